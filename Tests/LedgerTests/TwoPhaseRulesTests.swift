import Foundation
import Ledger
import Testing
import VaultTestSupport

/// TigerBeetle's rules for posts and voids that name accounts, and for expiries at creation.
@Suite("Two-phase rules")
struct TwoPhaseRulesTests {
    /// Alice (no overdraft) holds 1,000 from the bank; the merchant is empty; a hold of 300 from
    /// alice to the merchant.
    private func setUp(_ ledger: SQLiteLedger) async throws {
        _ = try await ledger.createAccount(id: "bank", currency: Money.eur)
        _ = try await ledger.createAccount(id: "alice", currency: Money.eur, flags: .debitsMustNotExceedCredits)
        _ = try await ledger.createAccount(id: "merchant", currency: Money.eur)
        try await ledger.fund("fund", from: "bank", to: "alice", 1_000)
        let hold = try await ledger.submit(.make("p1", "alice", "merchant", 300, .pending(expiresAt: nil)))
        try #require(hold == .created)
    }

    private func request(
        _ id: String, _ kind: TransferKind, debit: String, credit: String, amount: Int64 = 300
    ) -> TransferRequest {
        TransferRequest(id: id, debitAccountID: debit, creditAccountID: credit, amount: amount, kind: kind)
    }

    @Test(
        "A post or void naming other accounts than its hold's is refused and changes nothing",
        arguments: [TransferKind.post(pendingID: "p1"), .void(pendingID: "p1")])
    func namedAccountsMustMatch(kind: TransferKind) async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let before = try await (ledger.balances("alice"), ledger.balances("merchant"), ledger.balances("bank"))

            let wrongDebit = try await ledger.submit(request("c1", kind, debit: "bank", credit: "merchant"))
            #expect(wrongDebit.code == .pendingDifferentDebitAccount)
            let wrongCredit = try await ledger.submit(request("c2", kind, debit: "alice", credit: "bank"))
            #expect(wrongCredit.code == .pendingDifferentCreditAccount)
            let onlyWrongCredit = try await ledger.submit(request("c3", kind, debit: "", credit: "alice"))
            #expect(onlyWrongCredit.code == .pendingDifferentCreditAccount)
            // The sides swapped are other accounts too.
            let swapped = try await ledger.submit(request("c4", kind, debit: "merchant", credit: "alice"))
            #expect(swapped.code == .pendingDifferentDebitAccount)

            let after = try await (ledger.balances("alice"), ledger.balances("merchant"), ledger.balances("bank"))
            #expect(after == before)
            #expect(try await ledger.transfer("p1")?.state == .pending)
            for id in ["c1", "c2", "c3", "c4"] { #expect(try await ledger.transfer(id) == nil) }
        }
    }

    @Test(
        "A post or void naming its hold's accounts, one of them or none is accepted",
        arguments: [("alice", "merchant"), ("alice", ""), ("", "merchant"), ("", "")])
    func namedAccountsMatch(debit: String, credit: String) async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            #expect(
                try await ledger.submit(request("c1", .post(pendingID: "p1"), debit: debit, credit: credit)) == .created
            )
            let post = try #require(try await ledger.transfer("c1"))
            // The stored post carries the hold's accounts whatever the request named.
            #expect(post.debitAccountID == "alice")
            #expect(post.creditAccountID == "merchant")
            #expect(try await ledger.balances("merchant") == Balances(creditsPosted: 300))

            let hold2 = try await ledger.submit(.make("p2", "alice", "merchant", 100, .pending(expiresAt: nil)))
            #expect(hold2 == .created)
            #expect(
                try await ledger.submit(request("v2", .void(pendingID: "p2"), debit: debit, credit: credit)) == .created
            )
            #expect(try await ledger.transfer("p2")?.state == .voided)
        }
    }

    @Test("A retry of a post is exists with or without the accounts named, refused with others")
    func retryWithAccounts() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            #expect(try await ledger.submit(.post("c1", "p1", 200)) == .created)
            #expect(try await ledger.submit(.post("c1", "p1", 200)) == .exists)
            #expect(
                try await ledger.submit(
                    request("c1", .post(pendingID: "p1"), debit: "alice", credit: "merchant", amount: 200)) == .exists)
            #expect(
                try await ledger.submit(request("c1", .post(pendingID: "p1"), debit: "alice", credit: "", amount: 200))
                    == .exists)
            #expect(
                try await ledger.submit(request("c1", .post(pendingID: "p1"), debit: "bank", credit: "", amount: 200))
                    .code
                    == .transferExists)
            #expect(try await ledger.balances("merchant") == Balances(creditsPosted: 200))
        }
    }

    @Test("A hold must expire in the future: now or earlier is invalid_expiry, later is fine")
    func expiryAtCreation() async throws {
        let clock = ManualClock()
        try await withLedger(clock: clock) { ledger, _ in
            try await setUp(ledger)
            for (id, expiry) in [("e1", clock.now), ("e2", clock.now - 0.0005), ("e3", clock.now - 86_400)] {
                let result = try await ledger.submit(.make(id, "alice", "merchant", 10, .pending(expiresAt: expiry)))
                #expect(result.code == .invalidExpiry, "\(id)")
                #expect(try await ledger.transfer(id) == nil)
            }
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 1_000, debitsPending: 300))

            // A millisecond ahead is in the future.
            let soon = TransferRequest.make("e4", "alice", "merchant", 10, .pending(expiresAt: clock.now + 0.001))
            #expect(try await ledger.submit(soon) == .created)
            // Once its expiry has passed, a retry still finds it (the id is checked first).
            clock.advance(by: 10)
            #expect(try await ledger.submit(soon) == .exists)
            #expect(try await ledger.expirePending() == 1)
            #expect(try await ledger.submit(soon) == .exists)
            #expect(try await ledger.transfer("e4")?.state == .expired)
        }
    }

    @Test("An expiry that is not in the future fails a linked chain whole")
    func expiryInChain() async throws {
        let clock = ManualClock()
        try await withLedger(clock: clock) { ledger, _ in
            try await setUp(ledger)
            let results = try await ledger.createTransfers([
                .make("a", "bank", "merchant", 5, linked: true),
                .make("b", "alice", "merchant", 5, .pending(expiresAt: clock.now - 1)),
            ])
            #expect(results.map(\.code) == [.linkedTransferFailed, .invalidExpiry])
            #expect(try await ledger.balances("merchant") == Balances(creditsPending: 300))
        }
    }
}
