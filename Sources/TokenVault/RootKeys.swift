public import Audit
public import Foundation
import GRDB
public import VaultCrypto

/// One version of the root key as stored: a `system_keys` row, wrapped under the master key with
/// label `"ROOT"` and its version (docs/CRYPTO.md §4–§6).
///
/// Version 0 is the row named `root` (the key ring's first root key); version N ≥ 1 is the row
/// named `root.N`, added by `vault keys rotate-root`. The newest version is the active one.
public struct RootKeyRow: Sendable, Hashable {
    public var version: UInt32
    public var wrappedKey: [UInt8]
    public var createdAtMs: Int64

    /// The `system_keys.name` of root version `version`.
    static func name(version: UInt32) -> String { version == 0 ? "root" : "root.\(version)" }

    /// The version a `system_keys.name` denotes, or `nil` if it names no root key.
    static func version(name: String) -> UInt32? {
        if name == "root" { return 0 }
        guard name.hasPrefix("root."), let version = UInt32(name.dropFirst(5)), version > 0,
            name == Self.name(version: version)
        else { return nil }
        return version
    }

    /// Every root-key row in `db`, oldest first.
    static func all(_ db: Database) throws -> [RootKeyRow] {
        try Row.fetchAll(db, sql: "SELECT name, wrapped_key, created_at_ms FROM system_keys").compactMap { row in
            guard let version = Self.version(name: row["name"]), let wrapped = row["wrapped_key"] as Data? else {
                return nil
            }
            return RootKeyRow(version: version, wrappedKey: [UInt8](wrapped), createdAtMs: row["created_at_ms"])
        }.sorted { $0.version < $1.version }
    }

    func insert(in db: Database) throws {
        try db.execute(
            sql: "INSERT INTO system_keys (name, wrapped_key, created_at_ms) VALUES (?, ?, ?)",
            arguments: [Self.name(version: version), Data(wrappedKey), createdAtMs])
    }
}

/// The five keys derived from one root-key version (docs/CRYPTO.md §6), each for one purpose.
public final class RootSubkeys: Sendable {
    /// Subkeys of the root key, by `crypto_kdf` context.
    public enum Subkey: String, CaseIterable, Sendable {
        case fingerprint = "CARDFPRT"
        case callerFingerprint = "CALLERFP"
        case credentials = "APICREDS"
        case audit = "AUDITMAC"
        case rowMAC = "ROWMAC__"
    }

    /// The root-key version they derive from.
    public let version: UInt32
    /// Keyed BLAKE2b key for the internal PAN fingerprint (dedupe; never shown to a caller).
    public let fingerprintKey: SecretBytes
    /// Keyed BLAKE2b key that derives a caller's fingerprint from the internal one (CRYPTO.md §8).
    public let callerFingerprintKey: SecretBytes
    /// Keyed BLAKE2b key for API credential hashes.
    public let credentialKey: SecretBytes
    /// MAC key of the audit chain segment under this version.
    public let auditKey: SecretBytes
    /// MAC key of the `credentials`, `data_keys` and `vault_meta` rows.
    public let rowMACKey: SecretBytes
    let rowMAC: RowMAC
    public let auditChain: AuditChain

    init(root: SecretBytes, version: UInt32) throws {
        func derive(_ subkey: Subkey) throws -> SecretBytes {
            try KeyDerivation.deriveSubkey(id: 1, context: subkey.rawValue, from: root)
        }
        self.version = version
        fingerprintKey = try derive(.fingerprint)
        callerFingerprintKey = try derive(.callerFingerprint)
        credentialKey = try derive(.credentials)
        auditKey = try derive(.audit)
        rowMACKey = try derive(.rowMAC)
        rowMAC = RowMAC(key: rowMACKey)
        auditChain = AuditChain(key: auditKey)
    }

    /// Unwraps `row` under `master` and derives its subkeys.
    /// - Throws: ``VaultError`` `master_key_wrong` if `master` does not open it; `record_corrupt`
    ///   if it was moved from another row.
    convenience init(_ row: RootKeyRow, master: SecretBytes) throws {
        let root = try WrappedKey.unwrap(row.wrappedKey, label: .root, version: row.version, master: master)
        try self.init(root: root, version: row.version)
    }
}
