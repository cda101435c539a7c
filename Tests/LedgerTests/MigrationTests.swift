import Foundation
import GRDB
import Testing

@testable import Ledger

@Suite("Schema migration")
struct MigrationTests {
    /// A `wallet.db` as the first version of the ledger left it: accounts, single and
    /// two-phase transfers, no account numbers or postings.
    private func writeVersion1(in directory: String, bankDebits: Int64 = 1000) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let queue = try DatabaseQueue(path: (directory as NSString).appendingPathComponent(SQLiteLedger.fileName))
        try LedgerSchema.migrator.migrate(queue, upTo: "ledger.v1")
        try queue.write { db in
            try db.execute(
                sql: """
                    INSERT INTO ledger_accounts (id, currency, flags, debits_posted, credits_posted, debits_pending,
                        credits_pending, created_at_ms) VALUES
                        ('bank', 'EUR', 0, \(bankDebits), 0, 0, 0, 1),
                        ('alice', 'EUR', 1, 40, 1000, 300, 0, 2),
                        ('merchant', 'EUR', 0, 0, 40, 0, 300, 3),
                        ('yen', 'JPY', 0, 0, 0, 0, 0, 4);
                    INSERT INTO ledger_transfers (seq, id, debit_account, credit_account, amount, currency, kind,
                        pending_id, expires_at_ms, state, created_at_ms) VALUES
                        (1, 'fund', 'bank', 'alice', 1000, 'EUR', 'single', NULL, NULL, NULL, 5),
                        (2, 'p1', 'alice', 'merchant', 50, 'EUR', 'pending', NULL, NULL, 'posted', 6),
                        (3, 'c1', 'alice', 'merchant', 40, 'EUR', 'post', 'p1', NULL, NULL, 7),
                        (4, 'p2', 'alice', 'merchant', 300, 'EUR', 'pending', NULL, NULL, 'pending', 8);
                    """)
        }
    }

    @Test("A version 1 database keeps its balances and statements and gains postings")
    func fromVersion1() async throws {
        let directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("ledger-migration-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try writeVersion1(in: directory)

        let ledger = try SQLiteLedger(directory: directory)
        try await ledger.verifyInvariants()
        #expect(
            try await ledger.balances("alice") == Balances(debitsPosted: 40, creditsPosted: 1000, debitsPending: 300))
        #expect(try await ledger.transfers(of: "alice").map(\.transfer.id) == ["fund", "p1", "c1", "p2"])
        #expect(try await ledger.transfers(of: "merchant").map(\.sequence) == [2, 3, 4])
        #expect(try await ledger.transfers(of: "alice", after: 2, limit: 1).map(\.transfer.id) == ["c1"])
        #expect(try await ledger.transfer("p2")?.state == .pending)

        // Numbers follow creation order; a new account takes the next one.
        _ = try await ledger.createAccount(id: "bob", currency: Money.eur)
        let numbers = try await ledger.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT id, num FROM ledger_accounts ORDER BY num").map {
                "\($0["id"] as String)=\($0["num"] as Int64)"
            }
        }
        #expect(numbers == ["bank=1", "alice=2", "merchant=3", "yen=4", "bob=5"])

        // And it works on: the hold is posted, a new transfer lands in both statements.
        #expect(try await ledger.submit(.post("c2", "p2", 300)) == .created)
        #expect(try await ledger.submit(.make("t1", "merchant", "bob", 10)) == .created)
        #expect(try await ledger.transfers(of: "bob").map(\.transfer.id) == ["t1"])
        #expect(try await ledger.transfers(of: "merchant").map(\.transfer.id) == ["p1", "c1", "p2", "c2", "t1"])
        #expect(try await ledger.submit(.make("fund", "bank", "alice", 1000)) == .exists)
        try await ledger.verifyInvariants()
    }

    @Test("A version 1 database whose balances do not sum to zero is not migrated")
    func brokenVersion1() async throws {
        let directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("ledger-migration-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try writeVersion1(in: directory, bankDebits: 999)

        let error = #expect(throws: LedgerError.self) { try SQLiteLedger(directory: directory) }
        #expect(error?.code == .invariantViolated)
        // Nothing was changed: the database is still at version 1.
        let queue = try DatabaseQueue(path: (directory as NSString).appendingPathComponent(SQLiteLedger.fileName))
        #expect(try await queue.read { try LedgerSchema.migrator.appliedMigrations($0) } == ["ledger.v1"])
    }
}
