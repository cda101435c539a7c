public import Audit
import CardTokens
public import Foundation
import GRDB
import SQLiteSupport
public import VaultCrypto

// Key-ring changes of the SQLite store: rotations, the root-key versions, the card-verification
// keys and the master-key re-wrap, each in one transaction that checks before it writes.
extension SQLiteVaultStore {
    public func rotate(
        at date: Date, master: SecretBytes, newKey: SecretBytes, audit event: @Sendable (UInt32) -> AuditEvent
    ) async throws -> UInt32 {
        try await pool.write { [audit] db in
            _ = try Self.checkMaster(master, in: db)
            let rowMAC = try rowMAC(in: db)
            let rows = try Self.verifiedDataKeys(db, rowMAC: rowMAC)
            let version = (rows.map(\.version).max() ?? 0) + 1
            for var row in rows where row.state == .active {
                row.state = .decryptOnly
                try Self.writeDataKey(row, rowMAC: rowMAC, in: db)
            }
            let wrapped = WrappedKey.wrap(newKey, label: .dataKey, version: version, master: master)
            try Self.writeDataKey(
                DataKeyRow(version: version, state: .active, wrappedKey: wrapped, createdAt: date), rowMAC: rowMAC,
                in: db)
            try audit?.append([event(version)], in: db)
            return version
        }
    }

    public func rotateRoot(
        at date: Date, master: SecretBytes, newRoot: SecretBytes, newDataKey: SecretBytes,
        audit event: @Sendable (_ root: UInt32, _ dataKey: UInt32) -> AuditEvent
    ) async throws -> RootRotation {
        try await pool.write { [audit] db in
            let roots = try Self.checkMaster(master, in: db)
            let oldRowMAC = try rowMAC(in: db)
            let rootVersion = roots[roots.count - 1].row.version + 1
            let subkeys = try RootSubkeys(root: newRoot, version: rootVersion)
            let newRowMAC = subkeys.rowMAC
            // Every sealed row, verified under the old row key before it is re-sealed: re-sealing
            // an edited row would make the edit genuine.
            let dataKeys = try Self.verifiedDataKeys(db, rowMAC: oldRowMAC)
            let credentials = try CredentialRow.all(in: db)
            if let bad = credentials.first(where: { !$0.verifies(with: oldRowMAC) }) {
                throw VaultError(
                    .recordCorrupt,
                    "credential \(bad.id) fails its integrity check; revoke it before rotating the root key")
            }
            let cardVerificationKeys = try CardVerificationKeyRow.verified(db, rowMAC: oldRowMAC)
            let meta = try VaultDatabase.metaRows(db)
            if let bad = meta.first(where: {
                !oldRowMAC.verify($0.mac, table: VaultDatabase.metaTable, fields: [.text($0.name), .text($0.value)])
            }) {
                throw VaultError(.recordCorrupt, "vault_meta row \(bad.name) fails its integrity check")
            }
            // The current newest is re-wrapped as superseded: deleting the new row later cannot make
            // it the newest again (CRYPTO.md §13.9).
            let current = roots[roots.count - 1]
            try RootKeyRow.rewrap(current.key, version: current.row.version, as: .supersededRoot, under: master, in: db)
            try RootKeyRow(
                version: rootVersion,
                wrappedKey: WrappedKey.wrap(newRoot, label: .root, version: rootVersion, master: master),
                createdAtMs: date.milliseconds
            ).insert(in: db)
            // A new data key with it: rewrap then passes over every record, re-fingerprinting each.
            let dataVersion = (dataKeys.map(\.version).max() ?? 0) + 1
            for var row in dataKeys {
                if row.state == .active { row.state = .decryptOnly }
                try Self.writeDataKey(row, rowMAC: newRowMAC, in: db)
            }
            try Self.writeDataKey(
                DataKeyRow(
                    version: dataVersion, state: .active,
                    wrappedKey: WrappedKey.wrap(newDataKey, label: .dataKey, version: dataVersion, master: master),
                    createdAt: date), rowMAC: newRowMAC, in: db)
            for row in credentials {
                try db.execute(
                    sql: "UPDATE credentials SET mac = ? WHERE id = ?",
                    arguments: [row.sealed(with: newRowMAC).mac.map { Data($0) }, row.id])
            }
            for row in cardVerificationKeys { try row.sealed(with: newRowMAC).write(in: db) }
            for row in meta {
                try db.execute(
                    sql: "UPDATE vault_meta SET mac = ? WHERE name = ?",
                    arguments: [
                        Data(
                            newRowMAC.mac(table: VaultDatabase.metaTable, fields: [.text(row.name), .text(row.value)])),
                        row.name,
                    ])
            }
            guard let audit else { throw VaultError(.notInitialized, "the store was opened without its audit log") }
            try audit.appendSegmentStart(
                event(rootVersion, dataVersion), version: rootVersion, chain: subkeys.auditChain, in: db)
            return RootRotation(
                root: rootVersion, dataKey: dataVersion,
                resealedCredentials: credentials.filter { $0.revokedAtMs == nil }.map(\.id).sorted())
        }
    }

    public func rootKeyUse() async throws -> (fingerprints: [UInt32: Int], credentialHashes: [UInt32: Int]) {
        try pool.readInPlace { db in
            func counts(_ sql: String) throws -> [UInt32: Int] {
                var counts = [UInt32: Int]()
                for row in try Row.fetchAll(db, sql: sql) {
                    // Out-of-range values (a row edited without the key) are counted, not decoded into a crash.
                    let version = UInt32(truncatingIfNeeded: Int64.fromDatabaseValue(row["v"] as DatabaseValue) ?? -1)
                    counts[version, default: 0] += row["n"] as Int
                }
                return counts
            }
            return (
                try counts("SELECT fingerprint_version AS v, count(*) AS n FROM cards GROUP BY fingerprint_version"),
                try counts(
                    "SELECT hash_version AS v, count(*) AS n FROM credentials WHERE revoked_at_ms IS NULL GROUP BY hash_version"
                )
            )
        }
    }

    public func cardVerificationKeys() async throws -> [CardVerificationKeyRow] {
        try pool.readInPlace { db in try CardVerificationKeyRow.verified(db, rowMAC: rowMAC(in: db)) }
    }

    public func createCardVerificationKeyIfNone(
        at date: Date, master: SecretBytes, newKey: SecretBytes, audit event: @Sendable (UInt32) -> AuditEvent
    ) async throws -> CardVerificationKeyRow {
        try await addCardVerificationKey(at: date, master: master, newKey: newKey, onlyIfNone: true, audit: event)
    }

    public func rotateCardVerificationKey(
        at date: Date, master: SecretBytes, newKey: SecretBytes, audit event: @Sendable (UInt32) -> AuditEvent
    ) async throws -> CardVerificationKeyRow {
        try await addCardVerificationKey(at: date, master: master, newKey: newKey, onlyIfNone: false, audit: event)
    }

    public func issuedCardCounts() async throws -> [UInt32: Int] {
        try pool.readInPlace { db in
            var counts = [UInt32: Int]()
            for row in try Row.fetchAll(
                db, sql: "SELECT cvk_version, count(*) FROM cards WHERE cvk_version IS NOT NULL GROUP BY cvk_version")
            {
                counts[UInt32(row[0] as Int64)] = row[1]
            }
            return counts
        }
    }

    /// Adds the card-verification key after the newest (version 1 for the first), unless
    /// `onlyIfNone` and there is one already, which is then returned.
    private func addCardVerificationKey(
        at date: Date, master: SecretBytes, newKey: SecretBytes, onlyIfNone: Bool,
        audit event: @Sendable (UInt32) -> AuditEvent
    ) async throws -> CardVerificationKeyRow {
        try await pool.write { [audit] db in
            let rowMAC = try rowMAC(in: db)
            let newest = try CardVerificationKeyRow.verified(db, rowMAC: rowMAC).last
            if onlyIfNone, let newest { return newest }
            _ = try Self.checkMaster(master, in: db)
            let version = (newest?.version ?? 0) + 1
            let row = CardVerificationKeyRow(
                version: version,
                wrappedKey: WrappedKey.wrap(newKey, label: .cardVerificationKey, version: version, master: master),
                createdAtMs: date.milliseconds, mac: []
            ).sealed(with: rowMAC)
            try row.write(in: db)
            guard let audit else { throw VaultError(.notInitialized, "the store was opened without its audit log") }
            try audit.append([event(row.version)], in: db)
            return row
        }
    }

    public func rewrapKeyRing(
        from master: SecretBytes, to newMaster: SecretBytes, audit event: @Sendable ([UInt32]) -> AuditEvent
    ) async throws {
        try await pool.write { [audit] db in
            // Read, check, wrap and write in one transaction: a data key added meanwhile is either
            // wholly before it (and re-wrapped here) or waits for it (and finds the new key).
            let roots = try Self.checkMaster(master, in: db)
            let rowMAC = try rowMAC(in: db)
            let rows = try Self.verifiedDataKeys(db, rowMAC: rowMAC)
            var rewrapped = [UInt32]()
            for var row in rows where row.state != .retired {
                guard let wrapped = row.wrappedKey else {
                    throw VaultError(.recordCorrupt, "data key v\(row.version) has no wrapped key")
                }
                let key = try WrappedKey.unwrap(wrapped, label: .dataKey, version: row.version, master: master)
                row.wrappedKey = WrappedKey.wrap(key, label: .dataKey, version: row.version, master: newMaster)
                try Self.writeDataKey(row, rowMAC: rowMAC, in: db)
                rewrapped.append(row.version)
            }
            var cardVerificationKeys = [UInt32]()
            for var row in try CardVerificationKeyRow.verified(db, rowMAC: rowMAC) {
                let key = try row.unwrap(master: master)
                row.wrappedKey = WrappedKey.wrap(
                    key, label: .cardVerificationKey, version: row.version, master: newMaster)
                try row.sealed(with: rowMAC).write(in: db)
                cardVerificationKeys.append(row.version)
            }
            let newest = roots[roots.count - 1].row.version
            for (row, root) in roots {
                try RootKeyRow.rewrap(
                    root, version: row.version, as: RootKeyRow.label(version: row.version, newest: newest),
                    under: newMaster, in: db)
            }
            // Every non-retired version, exactly: none left under the old key.
            let expected = Set(
                try Int64.fetchAll(db, sql: "SELECT version FROM data_keys WHERE state != 'retired'").map(UInt32.init))
            guard expected == Set(rewrapped) else {
                throw VaultError(.recordCorrupt, "the data keys changed during the master-key rotation; run it again")
            }
            var record = event(rewrapped)
            record.objects += cardVerificationKeys.map { "cvk:\($0)" }
            try audit?.append([record], in: db)
        }
    }
}
