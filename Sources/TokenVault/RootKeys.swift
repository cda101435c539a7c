public import Audit
import Foundation
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

    /// Every root-key row in `db`, oldest first. Decoded without trusting the row: a root row
    /// holding a value of the wrong type is `record_corrupt`, never a crash.
    static func all(_ db: Database) throws -> [RootKeyRow] {
        try Row.fetchAll(db, sql: "SELECT name, wrapped_key, created_at_ms FROM system_keys").compactMap { row in
            guard let name = String.fromDatabaseValue(row["name"] as DatabaseValue),
                let version = Self.version(name: name)
            else { return nil }
            guard let wrapped = Data.fromDatabaseValue(row["wrapped_key"] as DatabaseValue),
                let createdAtMs = Int64.fromDatabaseValue(row["created_at_ms"] as DatabaseValue)
            else {
                throw VaultError(.recordCorrupt, "the system_keys row \(name) holds values the vault never writes")
            }
            return RootKeyRow(version: version, wrappedKey: [UInt8](wrapped), createdAtMs: createdAtMs)
        }.sorted { $0.version < $1.version }
    }

    /// The label a root version is wrapped with when `newest` is the newest version.
    static func label(version: UInt32, newest: UInt32) -> WrappedKey.Label {
        version == newest ? .root : .supersededRoot
    }

    /// Unwraps every row of `rows` (the vault's whole set of root versions) under `master`: they
    /// must be 0, 1, 2 … without a gap, the newest labelled `ROOT` and every older one `ROLD`.
    /// - Throws: ``VaultError`` `master_key_wrong` if `master` opens none of them;
    ///   `record_corrupt` if the set was edited (a gap, a newer version deleted, a row that this
    ///   master key does not open while others open).
    static func unwrapAll(_ rows: [RootKeyRow], master: SecretBytes) throws -> [(row: RootKeyRow, key: SecretBytes)] {
        guard !rows.isEmpty else { throw VaultError(.notInitialized, "the vault has no root key") }
        guard rows.map(\.version) == Array(0..<UInt32(rows.count)) else {
            throw VaultError(.recordCorrupt, "the root-key versions in system_keys are not 0, 1, 2 … without a gap")
        }
        let newest = rows[rows.count - 1].version
        var opened = [(row: RootKeyRow, key: SecretBytes)]()
        for row in rows.reversed() {
            do {
                opened.append((row, try row.unwrap(master: master, newest: newest)))
            } catch let error as VaultError where error.code == .wrongMasterKey {
                // The wrong master key opens none; a row this one does not open beside rows it
                // does open was put there by someone else.
                let othersOpen = rows.contains { other in
                    other.version != row.version
                        && [WrappedKey.Label.root, .supersededRoot].contains { label in
                            (try? WrappedKey.unwrap(
                                other.wrappedKey, label: label, version: other.version, master: master))
                                != nil
                        }
                }
                guard othersOpen else { throw error }
                throw VaultError(
                    .recordCorrupt,
                    "the system_keys row \(Self.name(version: row.version)) does not open with the master key that opens the others: it was not written by this vault"
                )
            }
        }
        return opened.reversed()
    }

    /// This row's root key, given the vault's newest version.
    func unwrap(master: SecretBytes, newest: UInt32) throws -> SecretBytes {
        let label = Self.label(version: version, newest: newest)
        do {
            return try WrappedKey.unwrap(wrappedKey, label: label, version: version, master: master)
        } catch let error as VaultError where error.code == .recordCorrupt && label == .root {
            // Labelled as superseded: the newer version that superseded it is gone.
            throw VaultError(
                .recordCorrupt,
                "root key v\(version) was superseded by a newer version that is no longer in system_keys: the key ring was rolled back"
            )
        }
    }

    /// Replaces the wrapped key of root version `version` with `key` wrapped under `master`
    /// (fresh nonce) with `label`.
    static func rewrap(
        _ key: SecretBytes, version: UInt32, as label: WrappedKey.Label, under master: SecretBytes, in db: Database
    ) throws {
        try db.execute(
            sql: "UPDATE system_keys SET wrapped_key = ? WHERE name = ?",
            arguments: [
                Data(WrappedKey.wrap(key, label: label, version: version, master: master)), name(version: version),
            ])
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

}
