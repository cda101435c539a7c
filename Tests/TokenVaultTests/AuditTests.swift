import Audit
import CardTokens
import Foundation
import GRDB
import InMemoryLogging
import Logging
import Synchronization
import Testing
import VaultCrypto

@testable import TokenVault

@Suite("Audit log")
struct AuditTests {
    /// A vault with some history: init, tokenize, rotate, rewrap, retire, credential create and revoke.
    static func withHistory(_ body: (Vault, Int64) async throws -> Void) async throws {
        try await withVault { vault, _ in
            _ = try await KeyLifecycleTests.seed(vault, count: 4)
            _ = try await vault.keys.rotate()
            _ = try await vault.keys.rewrap()
            try await vault.keys.retire(version: 1)
            let (credential, _) = try await vault.credentials.create(
                name: "ops", scopes: [.tokensRead], purposes: [])
            try await vault.credentials.revoke(id: credential.id)
            let verification = try await vault.audit.verify()
            #expect(verification.ok)
            try await body(vault, verification.records)
        }
    }

    @Test func adminActionsAreRecordedAndTheChainVerifies() async throws {
        try await Self.withHistory { vault, count in
            let records = try await vault.audit.records()
            #expect(Int64(records.count) == count)
            #expect(records.map(\.sequence) == Array(1...count))
            #expect(
                records.map(\.event.type) == [
                    "keys.init_master", "keys.init", "keys.rotate", "keys.rewrap", "keys.retire",
                    "credential.create", "credential.revoke",
                ])
            #expect(records.allSatisfy { $0.event.actor == "admin:cli" && $0.event.origin == "cli" })
            #expect(records.allSatisfy { $0.event.outcome == .success && $0.mac.count == 32 })
            let rotate = try #require(records.first { $0.event.type == "keys.rotate" })
            #expect(rotate.event.objects == ["data_key:2"])
            let rewrap = try #require(records.first { $0.event.type == "keys.rewrap" })
            #expect(rewrap.event.detail == "rewrapped=4")  // card records only: CVVs are not under data keys
            let retire = try #require(records.first { $0.event.type == "keys.retire" })
            #expect(retire.event.objects == ["data_key:1"])
            let create = try #require(records.first { $0.event.type == "credential.create" })
            #expect(create.event.objects.first?.hasPrefix("credential:") ?? false)
            #expect(create.event.detail == "scopes=tokens:read purposes= tenant=default")

            // Filters.
            #expect(try await vault.audit.records(limit: 2).map(\.sequence) == [1, 2])
            #expect(try await vault.audit.records(actor: "someone else").isEmpty)
            #expect(try await vault.audit.records(since: Date().addingTimeInterval(60)).isEmpty)
        }
    }

    @Test func editedRecordIsNamed() async throws {
        try await Self.withHistory { vault, count in
            try DB.execute(vault, "UPDATE audit_log SET actor = 'someone-else' WHERE sequence = 3")
            let verification = try await vault.audit.verify()
            #expect(!verification.ok)
            #expect(verification.firstBadRecord == 3)
            #expect(verification.records == 2)
            #expect(verification.reason != nil)
        }
    }

    @Test func editedTimeIsDetected() async throws {
        try await Self.withHistory { vault, _ in
            try DB.execute(vault, "UPDATE audit_log SET time_ms = time_ms - 86400000 WHERE sequence = 5")
            let verification = try await vault.audit.verify()
            #expect(!verification.ok && verification.firstBadRecord == 5)
        }
    }

    @Test func cutTailIsDetected() async throws {
        try await Self.withHistory { vault, count in
            try DB.execute(vault, "DELETE FROM audit_log WHERE sequence = ?", [count])
            let verification = try await vault.audit.verify()
            #expect(!verification.ok)
            #expect(verification.firstBadRecord == count)
        }
    }

    @Test func deletedMiddleRecordIsDetected() async throws {
        try await Self.withHistory { vault, _ in
            try DB.execute(vault, "DELETE FROM audit_log WHERE sequence = 4")
            let verification = try await vault.audit.verify()
            #expect(!verification.ok)
            #expect(verification.firstBadRecord == 4)
        }
    }

    @Test func swappedFieldsAreDetected() async throws {
        try await Self.withHistory { vault, _ in
            // Exchange everything but sequence and MAC between records 3 and 4.
            try await vault.database.pool.write { db in
                let columns = "time_ms, actor, type, outcome, origin, objects, purpose, reference, detail"
                let rows = try Row.fetchAll(
                    db, sql: "SELECT \(columns) FROM audit_log WHERE sequence IN (3, 4) ORDER BY sequence")
                for (sequence, row) in zip([4, 3], rows) {
                    try db.execute(
                        sql: """
                            UPDATE audit_log SET time_ms = ?, actor = ?, type = ?, outcome = ?, origin = ?, objects = ?,
                                purpose = ?, reference = ?, detail = ? WHERE sequence = ?
                            """,
                        arguments: StatementArguments(Array(row.databaseValues) + [sequence.databaseValue]))
                }
            }
            let types = try await vault.audit.records().map(\.event.type)
            #expect(types[2] == "keys.rewrap" && types[3] == "keys.rotate")
            let verification = try await vault.audit.verify()
            #expect(!verification.ok)
            #expect(verification.firstBadRecord == 3)
        }
    }

    @Test func reorderedRecordsAreDetected() async throws {
        try await Self.withHistory { vault, _ in
            // Swap whole rows, MACs included: each MAC commits to its position and predecessor.
            try DB.execute(vault, "UPDATE audit_log SET sequence = -1 WHERE sequence = 2")
            try DB.execute(vault, "UPDATE audit_log SET sequence = 2 WHERE sequence = 6")
            try DB.execute(vault, "UPDATE audit_log SET sequence = 6 WHERE sequence = -1")
            let verification = try await vault.audit.verify()
            #expect(!verification.ok)
            #expect(verification.firstBadRecord == 2)
        }
    }

    @Test func forgedAppendIsDetected() async throws {
        try await Self.withHistory { vault, count in
            try DB.execute(
                vault,
                """
                INSERT INTO audit_log (sequence, time_ms, actor, type, outcome, origin, objects, mac)
                SELECT sequence + 1, time_ms, actor, type, outcome, origin, objects, mac
                FROM audit_log WHERE sequence = ?
                """, [count])
            try DB.execute(vault, "UPDATE audit_head SET sequence = sequence + 1")
            let verification = try await vault.audit.verify()
            #expect(!verification.ok)
            #expect(verification.firstBadRecord == count + 1)
        }
    }

    @Test func anotherKeyDoesNotVerify() async throws {
        try await Self.withHistory { vault, _ in
            let forged = SQLiteAuditLog(
                writer: vault.database.pool, chain: AuditChain(key: .init(randomCount: 32)))
            let verification = try await forged.verify()
            #expect(!verification.ok && verification.firstBadRecord == 1)
        }
    }
}
