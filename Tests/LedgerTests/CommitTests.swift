import Foundation
import GRDB
import Synchronization
import Testing
import VaultTestSupport

@testable import Ledger

/// How one commit handles the accounts it keeps in memory: callers' records, rollbacks in the
/// middle of a commit, writes it did not make, and its incremental zero-sum check.
@Suite("Commits")
struct CommitTests {
    private func setUp(_ ledger: SQLiteLedger) async throws {
        _ = try await ledger.createAccount(id: "bank", currency: Money.eur)
        _ = try await ledger.createAccount(id: "alice", currency: Money.eur, flags: .debitsMustNotExceedCredits)
        _ = try await ledger.createAccount(id: "bob", currency: Money.eur)
        try await ledger.fund("fund", from: "bank", to: "alice", 100)
    }

    struct Refused: Error {}

    @Test("A record sees the balances its transfers leave, inside the commit")
    func recordSeesBalances() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let seen = Mutex<Balances?>(nil)
            let results = try await ledger.createTransfers(
                [.make("t1", "alice", "bob", 30), .make("t2", "alice", "bob", 20)],
                recording: { db, results in
                    #expect(results == [.created, .created])
                    seen.withLock { $0 = try? SQLiteLedger.account(db, "alice")?.balances }
                })
            #expect(results == [.created, .created])
            #expect(seen.withLock { $0 } == Balances(debitsPosted: 50, creditsPosted: 100))
        }
    }

    @Test("Callers sharing a commit: a throwing record undoes its own transfers, in memory too")
    func rollbackInTheMiddle() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            // Alice has 100. The second caller spends 60 and its record throws; the third caller
            // can then spend 90 (it could not if the 60 had stayed in memory).
            let outcomes = try await ledger.pool.write { db in
                try SQLiteLedger.apply(
                    [
                        .init(requests: [.make("a", "bank", "bob", 1)], record: nil),
                        .init(requests: [.make("b", "alice", "bob", 60)]) { _, _ in throw Refused() },
                        .init(requests: [.make("c", "alice", "bob", 90)], record: nil),
                        .init(requests: [.make("d", "alice", "bob", 11)]) { _, _ in },
                    ], in: db, now: Date(), fullCheck: true)
            }
            #expect(try outcomes[0].get() == [.created])
            #expect(throws: Refused.self) { try outcomes[1].get() }
            #expect(try outcomes[2].get() == [.created])
            #expect(try outcomes[3].get().map(\.code) == [.insufficientFunds])
            #expect(try await ledger.balances("alice") == Balances(debitsPosted: 90, creditsPosted: 100))
            #expect(try await ledger.balances("bob") == Balances(creditsPosted: 91))
            #expect(try await ledger.transfer("b") == nil)
            try await ledger.verifyInvariants()
        }
    }

    @Test("A balance written behind the commit's back fails the whole commit")
    func writesOutsideTheCommitAreCaught() async throws {
        try await withLedger(fullCheckEvery: 0) { ledger, _ in
            try await setUp(ledger)
            let error = await #expect(throws: LedgerError.self) {
                try await ledger.pool.write { db in
                    _ = try SQLiteLedger.apply(
                        [
                            .init(requests: [.make("a", "alice", "bob", 10)]) { db, _ in
                                try db.execute(
                                    sql:
                                        "UPDATE ledger_accounts SET credits_posted = credits_posted + 5 WHERE id = 'alice'"
                                )
                            },
                            .init(requests: [.make("b", "alice", "bob", 10)], record: nil),
                        ], in: db, now: Date(), fullCheck: false)
                }
            }
            #expect(error?.code == .invariantViolated)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 100))
            #expect(try await ledger.transfer("a") == nil)
        }
    }

    @Test("The incremental check refuses a flush whose deltas do not sum to zero")
    func incrementalZeroSum() async throws {
        try await withLedger(fullCheckEvery: 0) { ledger, _ in
            try await setUp(ledger)
            let error = await #expect(throws: LedgerError.self) {
                try await ledger.pool.write { db in
                    let commit = try LedgerCommit(db, now: 0)
                    let alice = try #require(try commit.slot("alice"))
                    var balances = commit.account(alice).balances
                    balances.creditsPosted += 1  // one side of a transfer only
                    commit.setBalances(alice, balances)
                    try commit.flush()
                }
            }
            #expect(error?.code == .invariantViolated)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 100))
        }
    }

    @Test("fullCheckEvery runs the SQL check in the commit: a corruption fails the next commit")
    func fullCheckInCommits() async throws {
        try await withLedger(fullCheckEvery: 1) { ledger, _ in
            try await setUp(ledger)
            try await ledger.pool.write { db in
                try db.execute(sql: "UPDATE ledger_accounts SET debits_posted = debits_posted + 7 WHERE id = 'bob'")
            }
            // Not an account the transfer touches: only the full check sees it.
            let error = await #expect(throws: LedgerError.self) {
                try await ledger.createTransfers([.make("t1", "bank", "alice", 1)])
            }
            #expect(error?.code == .invariantViolated)
            #expect(try await ledger.transfer("t1") == nil)
            await #expect(throws: LedgerError.self) { try await ledger.verifyInvariants() }
        }
    }

    @Test("Without fullCheckEvery, such a corruption is left to verifyInvariants")
    func fullCheckOff() async throws {
        try await withLedger(fullCheckEvery: 0) { ledger, _ in
            try await setUp(ledger)
            try await ledger.pool.write { db in
                try db.execute(sql: "UPDATE ledger_accounts SET debits_posted = debits_posted + 7 WHERE id = 'bob'")
            }
            #expect(try await ledger.createTransfers([.make("t1", "bank", "alice", 1)]) == [.created])
            let error = await #expect(throws: LedgerError.self) { try await ledger.verifyInvariants() }
            #expect(error?.code == .invariantViolated)
        }
    }

    @Test("Many transfers on the same accounts in one call: each written once, flags checked on each")
    func hotAccountsInOneCommit() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            // 150 transfers of 1 from alice (100): the first 100 pass, the rest are refused.
            let results = try await ledger.createTransfers((0..<150).map { .make("t\($0)", "alice", "bob", 1) })
            #expect(results.prefix(100).allSatisfy { $0 == .created })
            #expect(results.suffix(50).allSatisfy { $0.code == .insufficientFunds })
            #expect(try await ledger.balances("alice") == Balances(debitsPosted: 100, creditsPosted: 100))
            #expect(try await ledger.balances("bob") == Balances(creditsPosted: 100))
        }
    }
}
