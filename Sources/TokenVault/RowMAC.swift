import Foundation
import VaultCrypto

/// A keyed MAC over one stored row (`credentials`, `data_keys`), so that a writer of `vault.db`
/// without the master key cannot change what a row grants: an edited row no longer verifies and
/// is refused (docs/CRYPTO.md §6, §10, §13.8).
///
/// `mac = BLAKE2b-256(key: row MAC key, message: "vault-row" ‖ str table ‖ u32 BE n ‖ field_1 ‖ … ‖ field_n)`,
/// where `str` is `u32 BE length ‖ UTF-8` and each field is `u32 BE length ‖ bytes`, or
/// `ff ff ff ff` for NULL. Field 1 is always the primary key, so a MAC cannot be moved to another
/// row, and the table name keeps it from passing for a row of another table.
struct RowMAC: Sendable {
    /// One column value, as it is MAC'd.
    enum Field: Sendable, Hashable {
        /// An integer: 8 bytes, big-endian two's complement.
        case integer(Int64)
        /// Text: its UTF-8 bytes.
        case text(String)
        /// A blob: its bytes.
        case blob([UInt8])
        /// NULL.
        case null

        static func optional(_ value: Int64?) -> Field { value.map(Field.integer) ?? .null }
        static func optional(_ value: [UInt8]?) -> Field { value.map(Field.blob) ?? .null }
    }

    static let domain = Array("vault-row".utf8)
    static let byteCount = 32

    private let key: SecretBytes

    init(key: SecretBytes) {
        self.key = key
    }

    /// The canonical message MAC'd for a row of `table` (exposed for the known-answer test).
    static func message(table: String, fields: [Field]) -> [UInt8] {
        var bytes = domain
        func append(length: Int) {
            withUnsafeBytes(of: UInt32(length).bigEndian) { bytes.append(contentsOf: $0) }
        }
        let tableBytes = Array(table.utf8)
        append(length: tableBytes.count)
        bytes.append(contentsOf: tableBytes)
        append(length: fields.count)
        for field in fields {
            switch field {
            case .integer(let value):
                append(length: 8)
                withUnsafeBytes(of: UInt64(bitPattern: value).bigEndian) { bytes.append(contentsOf: $0) }
            case .text(let text):
                let utf8 = Array(text.utf8)
                append(length: utf8.count)
                bytes.append(contentsOf: utf8)
            case .blob(let blob):
                append(length: blob.count)
                bytes.append(contentsOf: blob)
            case .null:
                withUnsafeBytes(of: UInt32.max.bigEndian) { bytes.append(contentsOf: $0) }
            }
        }
        return bytes
    }

    func mac(table: String, fields: [Field]) -> [UInt8] {
        KeyedHash.hash(Self.message(table: table, fields: fields), key: key)
    }

    /// Whether `stored` is the MAC of the row, compared in constant time. A missing MAC fails.
    func verify(_ stored: [UInt8]?, table: String, fields: [Field]) -> Bool {
        guard let stored, stored.count == Self.byteCount else { return false }
        return ConstantTime.equals(mac(table: table, fields: fields), stored)
    }

    // MARK: data_keys

    static let dataKeysTable = "data_keys"

    /// The fields of a `data_keys` row, in MAC order: version, state, wrapped key, creation time.
    static func dataKeyFields(version: UInt32, state: String, wrappedKey: [UInt8]?, createdAtMs: Int64) -> [Field] {
        [.integer(Int64(version)), .text(state), .optional(wrappedKey), .integer(createdAtMs)]
    }

    func mac(of row: DataKeyRow) -> [UInt8] {
        mac(
            table: Self.dataKeysTable,
            fields: Self.dataKeyFields(
                version: row.version, state: row.state.rawValue, wrappedKey: row.wrappedKey,
                createdAtMs: row.createdAtMs))
    }

    /// Whether a data-key row is as the vault wrote it. (A state the vault never writes is read
    /// with no MAC, so it fails too.)
    func verify(_ row: DataKeyRow) -> Bool {
        verify(
            row.mac, table: Self.dataKeysTable,
            fields: Self.dataKeyFields(
                version: row.version, state: row.state.rawValue, wrappedKey: row.wrappedKey,
                createdAtMs: row.createdAtMs))
    }
}
