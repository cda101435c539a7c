import Audit
import CardTokens
import Foundation
import GRDB
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

/// Issue 8, finding 6: wiping the whole audit log (both tables and `audit.head`) verified as
/// intact, and the next append started a fresh chain. The log now starts with a genesis record
/// bound to the key ring, and only key-ring creation may start it.
@Suite("Finding 6: the audit log has a genesis record")
struct AuditGenesisTests {
    static func wipe(_ vault: Vault) throws {
        try DB.execute(vault, "DELETE FROM audit_log")
        try DB.execute(vault, "DELETE FROM audit_head")
        try FileManager.default.removeItem(atPath: vault.paths.auditHeadPath)
    }

    @Test("finding 6: the first record is the genesis record, bound to the key ring's creation (CRYPTO.md §11)")
    func finding6FirstRecordIsTheGenesisRecord() async throws {
        try await withVault { vault, _ in
            let records = try await vault.audit.records()
            #expect(records.map(\.event.type) == ["keys.init_master", "keys.init"])
            let stored: Int64? = try await vault.database.pool.read { db in
                try Int64.fetchOne(db, sql: "SELECT created_at_ms FROM system_keys WHERE name = 'root'")
            }
            let created = try #require(stored)
            // BLAKE2b-256(key: audit key, "audit-genesis" ‖ u64 BE created_at_ms), computed here.
            var message = Array("audit-genesis".utf8)
            withUnsafeBytes(of: UInt64(created).bigEndian) { message.append(contentsOf: $0) }
            let commitment = KeyedHash.hash(message, key: vault.keyRing.auditKey)
            #expect(records[0].event.detail == "genesis=" + AuditTamperTests.hex(commitment))
            #expect(records[1].event.detail == nil)
            #expect(try await vault.audit.verify().ok)
        }
    }

    @Test("finding 6: the whole log wiped (both tables and audit.head) does not verify")
    func finding6WipedLogDoesNotVerify() async throws {
        try await AuditTamper.withHistory { vault, _ in
            try Self.wipe(vault)
            let verification = try await vault.audit.verify()
            #expect(!verification.ok)
            #expect(verification.records == 0 && verification.firstBadRecord == 1)
            #expect(verification.reason?.contains("the log is empty but the vault has a key ring") == true)
        }
    }

    @Test("finding 6: after a wipe, an append does not start a new chain")
    func finding6AppendAfterWipeIsRefused() async throws {
        try await AuditTamper.withHistory { vault, _ in
            try Self.wipe(vault)
            await #expect(throws: AuditLogError.self) { try await vault.audit.append(AuditTamper.event(1)) }
            // An action that audits in its own transaction is refused whole.
            await #expect(throws: AuditLogError.self) {
                _ = try await vault.credentials.create(name: "after wipe", scopes: [.tokensRead], purposes: [])
            }
            #expect(try DB.count(vault, "SELECT count(*) FROM audit_log") == 0)
            #expect(try DB.count(vault, "SELECT count(*) FROM credentials WHERE name = 'after wipe'") == 0)
            #expect(!(try await vault.audit.verify().ok))
        }
    }

    @Test("finding 6: audit_head deleted alone: appends are refused (no second chain)")
    func finding6HeadDeletedAppendIsRefused() async throws {
        try await AuditTamper.withHistory { vault, _ in
            try DB.execute(vault, "DELETE FROM audit_head")
            await #expect(throws: AuditLogError.self) { try await vault.audit.append(AuditTamper.event(1)) }
            #expect(try DB.count(vault, "SELECT count(*) FROM audit_log") == Int(AuditHistory.count))
        }
    }

    @Test("finding 6: a first record that is not the genesis record of this key ring is named")
    func finding6FirstRecordNotGenesis() async throws {
        try await withVault { vault, _ in
            // The key ring's creation time edited: record 1 no longer commits to it.
            try DB.execute(vault, "UPDATE system_keys SET created_at_ms = created_at_ms + 1")
            let verification = try await vault.audit.verify()
            #expect(!verification.ok && verification.firstBadRecord == 1)
            #expect(verification.reason?.contains("not the genesis record") == true)
        }
    }

    @Test("review: a genesis commitment whose hex looks like a card number is stored as it is, and verifies")
    func genesisHexIsNotRedacted() async throws {
        try await withVault { vault, _ in
            let chain = AuditChain(key: vault.keyRing.auditKey)
            // About one creation time in 650 gives a commitment with a card-like digit run.
            let created = try #require(
                (Int64(0)..<20_000).first {
                    CardNumberDetector.containsCardNumber(chain.genesisDetail(keyRingCreatedAtMs: $0))
                })
            try AuditGenesisTests.wipe(vault)
            try await vault.database.pool.write { db in
                try vault.audit.appendGenesis([AuditTamper.event(1)], keyRingCreatedAtMs: created, in: db)
            }
            let first = try #require(try await vault.audit.records().first)
            #expect(first.event.detail == chain.genesisDetail(keyRingCreatedAtMs: created))
        }
    }

    @Test("finding 6: a genesis record is refused on a log that already has records")
    func finding6GenesisOnlyStartsAnEmptyLog() async throws {
        try await withVault { vault, _ in
            #expect(throws: AuditLogError.self) {
                try vault.database.pool.write { db in
                    try vault.audit.appendGenesis([AuditTamper.event(1)], keyRingCreatedAtMs: 0, in: db)
                }
            }
        }
    }

    @Test("finding 6: genesis commitment known-answer vector of docs/CRYPTO.md §17")
    func finding6GenesisKnownAnswer() {
        let key = AuditTamperTests.bytes(hex: "e89bd417cca881ec18e32e1ee5eda83d9f2dd5529f46ad34d3c33ebe3da1c47a")
        let chain = AuditChain(key: key.withUnsafeBytes { SecretBytes(copying: $0) })
        #expect(
            chain.genesisDetail(keyRingCreatedAtMs: 1_767_225_600_000)
                == "genesis=6f87c634c215e6abcf89474a30b56ce9cbd59848146543f60736516e53192da7")
    }
}
