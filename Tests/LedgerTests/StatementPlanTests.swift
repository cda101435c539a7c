import GRDB
import Testing

@testable import Ledger

@Suite("Statement queries")
struct StatementPlanTests {
    /// What SQLite plans for a statement page: one range of `ledger_postings` by account and
    /// seq, each row joined by the transfer's primary key; no scan, no sort.
    @Test("A statement page is a range search of the postings, not a scan or a sort")
    func queryPlan() async throws {
        try await withLedger { ledger, _ in
            _ = try await ledger.createAccount(id: "bank", currency: Money.eur)
            _ = try await ledger.createAccount(id: "alice", currency: Money.eur)
            for index in 0..<50 { try await ledger.fund("t\(index)", from: "bank", to: "alice", 1) }
            let plan = try await ledger.pool.read { db in
                try Row.fetchAll(
                    db, sql: "EXPLAIN QUERY PLAN " + SQLiteLedger.statementSQL, arguments: ["alice", 0, 10]
                ).map { $0["detail"] as String }
            }
            #expect(plan.contains("SEARCH p USING PRIMARY KEY (account=? AND seq>?)"), "\(plan)")
            #expect(plan.contains("SEARCH t USING INTEGER PRIMARY KEY (rowid=?)"), "\(plan)")
            #expect(!plan.contains { $0.contains("SCAN") || $0.contains("TEMP B-TREE") }, "\(plan)")
        }
    }

    @Test("Each transfer has exactly its two postings; a missing one fails verifyInvariants")
    func postingsAreChecked() async throws {
        try await withLedger { ledger, _ in
            _ = try await ledger.createAccount(id: "bank", currency: Money.eur)
            _ = try await ledger.createAccount(id: "alice", currency: Money.eur)
            try await ledger.fund("t1", from: "bank", to: "alice", 5)
            _ = try await ledger.submit(.make("p1", "alice", "bank", 2, .pending(expiresAt: nil)))
            _ = try await ledger.submit(.void("v1", "p1"))
            let counts = try await ledger.pool.read { db in
                try (
                    Int.fetchOne(db, sql: "SELECT count(*) FROM ledger_postings"),
                    Int.fetchOne(db, sql: "SELECT count(*) FROM ledger_transfers")
                )
            }
            #expect(counts.0 == 6)
            #expect(counts.1 == 3)
            try await ledger.verifyInvariants()

            try await ledger.pool.write { db in
                try db.execute(sql: "DELETE FROM ledger_postings WHERE seq = (SELECT max(seq) FROM ledger_postings)")
            }
            let error = await #expect(throws: LedgerError.self) { try await ledger.verifyInvariants() }
            #expect(error?.code == .invariantViolated)
            #expect(try await ledger.transfers(of: "alice").map(\.transfer.id) == ["t1", "p1"])
        }
    }
}
