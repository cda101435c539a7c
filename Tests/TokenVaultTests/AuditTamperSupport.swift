import Audit
import Foundation
import GRDB
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

// Helpers for AuditTamperTests: a vault with a known 20-record history, and direct edits of
// `audit_log`, `audit_head` and the `audit.head` file, the way an attacker with write access to
// the data folder would make them.

/// What the tamper tests know about the history ``AuditTamper/withHistory(_:)`` builds.
enum AuditHistory {
    /// The records the history has.
    static let count: Int64 = 20
    /// The record types in sequence order.
    static let types =
        [
            "keys.init_master", "keys.init", "credential.create", "keys.rotate", "credential.create",
            "credential.revoke",
        ] + Array(repeating: "detokenize", count: 12) + ["audit.verify", "audit.verify"]
    /// A record with a purpose and a reference (a granted detokenize).
    static let withPurpose: Int64 = 9
    /// A record with no purpose (a refusal before the body was read).
    static let withoutPurpose: Int64 = 10
    /// A record naming two tokens (a batch).
    static let batch: Int64 = 12
    /// A record with `outcome = 'denied'`.
    static let denied: Int64 = 14
}

/// The stored head of the log (`audit_head`, or the `audit.head` file).
struct StoredHead: Equatable {
    var sequence: Int64
    var mac: [UInt8]
    var headMAC: [UInt8]
}

enum AuditTamper {
    /// A vault whose log holds exactly ``AuditHistory/count`` records: init, credential create
    /// and revoke, a key rotation, and detokenize and verification events appended one by one
    /// and in batches through `vault.audit.append`. The chain verifies before `body` runs.
    static func withHistory(_ body: (Vault, Sandbox) async throws -> Void) async throws {
        try await withVault { vault, sandbox in
            let (detokenizer, _) = try await vault.credentials.create(
                name: "settlement", scopes: [.detokenize], purposes: ["settlement", "chargeback"])
            _ = try await vault.keys.rotate()
            let (reader, _) = try await vault.credentials.create(name: "reader", scopes: [.tokensRead], purposes: [])
            try await vault.credentials.revoke(id: reader.id)
            // 7 … 18: detokenize requests, granted and refused, alone and in batches.
            let start = Date(timeIntervalSince1970: 1_767_225_600)
            var events = [AuditEvent]()
            for index in 0..<12 {
                let time = start.addingTimeInterval(Double(index) * 60)
                let token = "tok_\(String(repeating: "A", count: 25))\(index)"
                switch index {
                case 3:  // record 10: refused before the body was read
                    events.append(
                        AuditEvent(
                            actor: "anonymous", type: "detokenize", time: time, outcome: .denied, origin: "10.0.0.9",
                            detail: "refused=unauthenticated"))
                case 5:  // record 12: a batch of two
                    events.append(
                        AuditEvent(
                            actor: detokenizer.id, type: "detokenize", time: time, outcome: .success,
                            origin: "10.0.0.7", objects: [token, token + "b"], purpose: "settlement",
                            reference: "batch-\(index)", detail: "reveal=masked found=2 missing=0 invalid=0"))
                case 7:  // record 14: a purpose the key may not use
                    events.append(
                        AuditEvent(
                            actor: detokenizer.id, type: "detokenize", time: time, outcome: .denied,
                            origin: "10.0.0.7", objects: [token], purpose: "cardholder_reveal",
                            reference: "case-\(index)", detail: "refused=purpose_not_allowed"))
                default:
                    events.append(
                        AuditEvent(
                            actor: detokenizer.id, type: "detokenize", time: time, outcome: .success,
                            origin: "10.0.0.7", objects: [token],
                            purpose: index.isMultiple(of: 2) ? "settlement" : "chargeback",
                            reference: "ref-\(index)", detail: "reveal=pan found=1 missing=0 invalid=0"))
                }
            }
            // Single appends, then two batches.
            for event in events.prefix(6) { try await vault.audit.append(event) }
            #expect(try await vault.audit.append(Array(events[6..<9])) == [13, 14, 15])
            #expect(try await vault.audit.append(Array(events[9...])) == [16, 17, 18])
            for _ in 0..<2 {
                let verification = try await vault.audit.verify()
                #expect(verification.ok, "\(verification)")
                try await vault.audit.append(
                    AuditEvent(
                        actor: "admin:cli", type: "audit.verify", outcome: .success, origin: "cli",
                        detail: "records=\(verification.records)"))
            }
            let records = try await vault.audit.records()
            try #require(records.map(\.sequence) == Array(1...AuditHistory.count))
            try #require(records.map(\.event.type) == AuditHistory.types)
            let verification = try await vault.audit.verify()
            try #require(verification.ok && verification.records == AuditHistory.count, "\(verification)")
            try await body(vault, sandbox)
        }
    }

    // MARK: audit_log

    static func execute(_ vault: Vault, _ sql: String, _ arguments: StatementArguments = []) throws {
        try DB.execute(vault, sql, arguments)
    }

    static func mac(_ vault: Vault, of sequence: Int64) throws -> [UInt8] {
        let mac = try vault.database.pool.read { db in
            try Data.fetchOne(db, sql: "SELECT mac FROM audit_log WHERE sequence = ?", arguments: [sequence])
        }
        return [UInt8](try #require(mac, "no record \(sequence)"))
    }

    /// Moves records `from…` up by `offset` (negative: down), leaving a hole to insert into.
    /// Goes through negative sequences, since SQLite checks the key row by row.
    static func shiftSequences(_ vault: Vault, from: Int64, by offset: Int64) throws {
        try vault.database.pool.write { db in
            try db.execute(
                sql: "UPDATE audit_log SET sequence = -(sequence + ?) WHERE sequence >= ?", arguments: [offset, from])
            try db.execute(sql: "UPDATE audit_log SET sequence = -sequence WHERE sequence < 0")
        }
    }

    /// Exchanges two whole rows, MACs included.
    static func swapRows(_ vault: Vault, _ first: Int64, _ second: Int64) throws {
        try vault.database.pool.write { db in
            try db.execute(sql: "UPDATE audit_log SET sequence = -1 WHERE sequence = ?", arguments: [first])
            try db.execute(sql: "UPDATE audit_log SET sequence = ? WHERE sequence = ?", arguments: [first, second])
            try db.execute(sql: "UPDATE audit_log SET sequence = ? WHERE sequence = -1", arguments: [second])
        }
    }

    /// Deletes the records after `sequence`.
    static func cutTail(_ vault: Vault, after sequence: Int64) throws {
        try execute(vault, "DELETE FROM audit_log WHERE sequence > ?", [sequence])
    }

    // MARK: audit_head

    static func databaseHead(_ vault: Vault) throws -> StoredHead? {
        try vault.database.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT sequence, mac, head_mac FROM audit_head WHERE id = 1").map {
                StoredHead(
                    sequence: $0["sequence"], mac: [UInt8]($0["mac"] as Data),
                    headMAC: [UInt8]($0["head_mac"] as Data))
            }
        }
    }

    static func setDatabaseHead(_ vault: Vault, _ head: StoredHead) throws {
        try execute(
            vault, "UPDATE audit_head SET sequence = ?, mac = ?, head_mac = ? WHERE id = 1",
            [head.sequence, Data(head.mac), Data(head.headMAC)])
    }

    // MARK: the audit.head file

    static func headFilePath(_ vault: Vault) throws -> String {
        let path = try #require(vault.audit.headFilePath)
        #expect(path == vault.paths.auditHeadPath)
        return path
    }

    static func headFileBytes(_ vault: Vault) throws -> [UInt8] {
        try Bytes.read(try headFilePath(vault))
    }

    static func setHeadFile(_ vault: Vault, _ bytes: [UInt8]) throws {
        let path = try headFilePath(vault)
        try? FileManager.default.removeItem(atPath: path)
        try Bytes.write(bytes, to: path)
    }

    /// Parses the file by docs/CRYPTO.md §11 (independently of `AuditHead`):
    /// `"VAH1" ‖ u64 BE sequence ‖ mac (32) ‖ head MAC (32)`.
    static func parseHeadFile(_ bytes: [UInt8]) -> StoredHead? {
        guard bytes.count == 76, bytes.prefix(4).elementsEqual("VAH1".utf8) else { return nil }
        let sequence = bytes[4..<12].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return StoredHead(
            sequence: Int64(bitPattern: sequence), mac: Array(bytes[12..<44]), headMAC: Array(bytes[44..<76]))
    }

    static func headFileBytes(_ head: StoredHead) -> [UInt8] {
        var bytes = Array("VAH1".utf8)
        withUnsafeBytes(of: UInt64(bitPattern: head.sequence).bigEndian) { bytes.append(contentsOf: $0) }
        return bytes + head.mac + head.headMAC
    }

    /// The head MAC by docs/CRYPTO.md §11, computed here with keyed BLAKE2b:
    /// `BLAKE2b-256(key: audit key, message: "audit-head" ‖ u64 BE sequence ‖ mac)`.
    static func headMAC(_ vault: Vault, sequence: Int64, mac: [UInt8]) -> [UInt8] {
        var message = Array("audit-head".utf8)
        withUnsafeBytes(of: UInt64(bitPattern: sequence).bigEndian) { message.append(contentsOf: $0) }
        return KeyedHash.hash(message + mac, key: vault.keyRing.auditKey)
    }

    /// A head sealed with the vault's audit key: what an insider holding the master key can forge.
    static func sealedHead(_ vault: Vault, sequence: Int64) throws -> StoredHead {
        let mac = try mac(vault, of: sequence)
        return StoredHead(sequence: sequence, mac: mac, headMAC: headMAC(vault, sequence: sequence, mac: mac))
    }

    /// An audit log over the same database and key that does not write the head file: appends
    /// that move only the database's head.
    static func fileLessLog(_ vault: Vault) -> SQLiteAuditLog {
        SQLiteAuditLog(writer: vault.database.pool, chain: AuditChain(key: vault.keyRing.auditKey))
    }

    static func event(_ index: Int, time: Date = Date()) -> AuditEvent {
        AuditEvent(
            actor: "admin:cli", type: "test.event", time: time, outcome: .success, origin: "cli",
            objects: ["object:\(index)"], detail: "index=\(index)")
    }
}
