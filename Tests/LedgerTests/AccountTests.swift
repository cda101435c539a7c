import Foundation
import Ledger
import Testing

@Suite("Accounts")
struct AccountTests {
    @Test("A new account starts with zero balances and the given currency and flags")
    func create() async throws {
        try await withLedger { ledger, _ in
            let created = try await ledger.createAccount(
                id: "wallet:alice", currency: Money.eur, flags: .debitsMustNotExceedCredits)
            #expect(created.id == "wallet:alice")
            #expect(created.currency == Money.eur)
            #expect(created.flags == .debitsMustNotExceedCredits)
            #expect(created.balances == Balances())
            #expect(created.balances.posted == 0)
            #expect(created.balances.pending == 0)
            #expect(created.balances.available == 0)

            let read = try #require(try await ledger.account("wallet:alice"))
            #expect(read == created)
            #expect(try await ledger.account("wallet:nobody") == nil)
        }
    }

    @Test("Creating the same account again returns it unchanged, balances included")
    func idempotentCreate() async throws {
        try await withLedger { ledger, _ in
            let first = try await ledger.createAccount(id: "bank", currency: Money.eur)
            _ = try await ledger.createAccount(id: "alice", currency: Money.eur)
            try await ledger.fund("t1", from: "bank", to: "alice", 500)

            let again = try await ledger.createAccount(id: "bank", currency: Money.eur)
            #expect(again.id == first.id)
            #expect(again.createdAt == first.createdAt)
            #expect(again.balances.debitsPosted == 500)
            #expect(try await ledger.account("bank") == again)
        }
    }

    @Test("The same id with another currency or other flags is refused")
    func conflictingCreate() async throws {
        try await withLedger { ledger, _ in
            _ = try await ledger.createAccount(id: "alice", currency: Money.eur, flags: .debitsMustNotExceedCredits)

            let otherCurrency = await #expect(throws: LedgerError.self) {
                try await ledger.createAccount(id: "alice", currency: Money.usd, flags: .debitsMustNotExceedCredits)
            }
            #expect(otherCurrency?.code == .accountExists)

            let otherFlags = await #expect(throws: LedgerError.self) {
                try await ledger.createAccount(id: "alice", currency: Money.eur)
            }
            #expect(otherFlags?.code == .accountExists)

            let account = try #require(try await ledger.account("alice"))
            #expect(account.currency == Money.eur)
            #expect(account.flags == .debitsMustNotExceedCredits)
        }
    }

    @Test(
        "Ids must be 1 to 128 printable ASCII characters",
        arguments: ["", " ", "a b", "tab\there", "line\n", "caf\u{E9}", "\u{7F}", String(repeating: "x", count: 129)])
    func invalidIDs(id: String) async throws {
        try await withLedger { ledger, _ in
            let error = await #expect(throws: LedgerError.self) {
                try await ledger.createAccount(id: id, currency: Money.eur)
            }
            #expect(error?.code == .invalidID)
            let stored = try await ledger.account(id)
            #expect(stored == nil)
        }
    }

    @Test("The longest and the oddest valid ids are accepted")
    func boundaryIDs() async throws {
        try await withLedger { ledger, _ in
            for id in [String(repeating: "x", count: 128), "a", "!~:/-_.@#"] {
                let account = try await ledger.createAccount(id: id, currency: Money.jpy)
                #expect(account.id == id)
            }
        }
    }

    @Test("Accounts and balances survive reopening the ledger")
    func reopen() async throws {
        try await withLedger { ledger, directory in
            _ = try await ledger.createAccount(id: "bank", currency: Money.eur)
            _ = try await ledger.createAccount(id: "alice", currency: Money.eur, flags: .debitsMustNotExceedCredits)
            try await ledger.fund("t1", from: "bank", to: "alice", 250)

            let reopened = try SQLiteLedger(directory: directory)
            let alice = try #require(try await reopened.account("alice"))
            #expect(alice.flags == .debitsMustNotExceedCredits)
            #expect(alice.balances.creditsPosted == 250)
            #expect(try await reopened.submit(.make("t1", "bank", "alice", 250)) == .exists)
        }
    }
}
