import Foundation
import GRDB
import VaultCrypto

/// One version of the card-verification key (CVK) as stored: a `card_verification_keys` row,
/// wrapped under the master key with label `"CVK1"` and its version, sealed with a row MAC
/// (docs/CRYPTO.md §21). The CVK derives the CVV of every card the vault issues; a card records
/// the version it was issued under (`cards.cvk_version`), so its CVV never changes.
public struct CardVerificationKeyRow: Sendable, Hashable {
    public var version: UInt32
    public var wrappedKey: [UInt8]
    public var createdAtMs: Int64
    public var mac: [UInt8]

    static let table = "card_verification_keys"

    /// The fields MAC'd, in order: version, wrapped key, creation time.
    var macFields: [RowMAC.Field] {
        [.integer(Int64(version)), .blob(wrappedKey), .integer(createdAtMs)]
    }

    func verifies(with rowMAC: RowMAC) -> Bool {
        rowMAC.verify(mac, table: Self.table, fields: macFields)
    }

    func sealed(with rowMAC: RowMAC) -> CardVerificationKeyRow {
        var row = self
        row.mac = rowMAC.mac(table: Self.table, fields: macFields)
        return row
    }

    /// Every row in `db`, oldest first. Decoded without trusting the row: a value of the wrong
    /// type reads as one that fails its MAC.
    static func all(_ db: Database) throws -> [CardVerificationKeyRow] {
        try Row.fetchAll(db, sql: "SELECT version, wrapped_key, created_at_ms, mac FROM \(table) ORDER BY version")
            .map { row in
                CardVerificationKeyRow(
                    version: UInt32(
                        truncatingIfNeeded: Int64.fromDatabaseValue(row["version"] as DatabaseValue) ?? 0),
                    wrappedKey: Data.fromDatabaseValue(row["wrapped_key"] as DatabaseValue).map { [UInt8]($0) } ?? [],
                    createdAtMs: Int64.fromDatabaseValue(row["created_at_ms"] as DatabaseValue) ?? 0,
                    mac: Data.fromDatabaseValue(row["mac"] as DatabaseValue).map { [UInt8]($0) } ?? [])
            }
    }

    /// Every row, each checked against its MAC under `rowMAC`.
    /// - Throws: ``VaultError`` `record_corrupt` for a row changed without the key.
    static func verified(_ db: Database, rowMAC: RowMAC) throws -> [CardVerificationKeyRow] {
        let rows = try all(db)
        if let bad = rows.first(where: { !$0.verifies(with: rowMAC) }) {
            throw VaultError(
                .recordCorrupt,
                "card-verification key v\(bad.version) fails its integrity check: the row was changed without the key")
        }
        return rows
    }

    /// Inserts or replaces the row (its wrapped key and MAC).
    func write(in db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO \(Self.table) (version, wrapped_key, created_at_ms, mac) VALUES (?, ?, ?, ?)
                ON CONFLICT(version) DO UPDATE SET wrapped_key = excluded.wrapped_key, mac = excluded.mac
                """,
            arguments: [version, Data(wrappedKey), createdAtMs, Data(mac)])
    }

    /// This row's key.
    /// - Throws: ``VaultError`` `master_key_wrong` or `record_corrupt` (see ``WrappedKey``).
    func unwrap(master: SecretBytes) throws -> SecretBytes {
        try WrappedKey.unwrap(wrappedKey, label: .cardVerificationKey, version: version, master: master)
    }
}
