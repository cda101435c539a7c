public import Foundation
import Synchronization
public import VaultCrypto

/// A data key's life-cycle state (DESIGN §3).
public enum DataKeyState: String, Sendable, Codable {
    /// The one version that encrypts new records.
    case active
    /// An older version: decrypts, never encrypts (PCI DSS 3.7.5).
    case decryptOnly = "decrypt_only"
    /// Retired: its wrapped key is deleted from `vault.db` and its WAL (docs/CRYPTO.md §13.5);
    /// allowed only once no card record used it.
    case retired
}

/// A data key as stored: wrapped under the master key, or nothing once retired.
public struct DataKeyRow: Sendable, Hashable {
    public var version: UInt32
    public var state: DataKeyState
    public var wrappedKey: [UInt8]?
    public var createdAt: Date

    public init(version: UInt32, state: DataKeyState, wrappedKey: [UInt8]?, createdAt: Date) {
        self.version = version
        self.state = state
        self.wrappedKey = wrappedKey
        self.createdAt = createdAt
    }
}

/// The unwrapped keys a running vault uses, refreshed from the store so that a rotation made
/// by another process (the CLI, another server) takes effect without a restart.
public final class KeyRing: Sendable {
    /// Subkeys of the root key, by `crypto_kdf` context (see docs/CRYPTO.md).
    public enum Subkey: String, CaseIterable {
        case fingerprint = "CARDFPRT"
        case callerFingerprint = "CALLERFP"
        case credentials = "APICREDS"
        case audit = "AUDITMAC"
    }

    private struct State {
        var master: SecretBytes
        var dataKeys: [UInt32: SecretBytes]
        var rows: [DataKeyRow]
        var activeVersion: UInt32
    }

    private let state: Mutex<State>
    /// Keyed BLAKE2b key for the internal PAN fingerprint (dedupe; never shown to a caller).
    public let fingerprintKey: SecretBytes
    /// Keyed BLAKE2b key that derives a caller's fingerprint from the internal one (CRYPTO.md §8).
    public let callerFingerprintKey: SecretBytes
    /// Keyed BLAKE2b key for API credential hashes.
    public let credentialKey: SecretBytes
    /// MAC key of the audit chain.
    public let auditKey: SecretBytes

    /// Unwraps every non-retired data key and the root key.
    /// - Throws: ``VaultError`` `master_key_wrong` if the master key does not open them.
    public init(master: SecretBytes, wrappedRoot: [UInt8], dataKeys rows: [DataKeyRow]) throws {
        let root = try WrappedKey.unwrap(wrappedRoot, label: .root, version: 0, master: master)
        fingerprintKey = try KeyDerivation.deriveSubkey(id: 1, context: Subkey.fingerprint.rawValue, from: root)
        callerFingerprintKey = try KeyDerivation.deriveSubkey(
            id: 1, context: Subkey.callerFingerprint.rawValue, from: root)
        credentialKey = try KeyDerivation.deriveSubkey(id: 1, context: Subkey.credentials.rawValue, from: root)
        auditKey = try KeyDerivation.deriveSubkey(id: 1, context: Subkey.audit.rawValue, from: root)
        let (keys, active) = try Self.unwrap(rows, master: master, known: [:])
        state = Mutex(State(master: master, dataKeys: keys, rows: rows, activeVersion: active))
    }

    private static func unwrap(
        _ rows: [DataKeyRow], master: SecretBytes, known: [UInt32: SecretBytes]
    ) throws -> ([UInt32: SecretBytes], UInt32) {
        var keys = [UInt32: SecretBytes]()
        var active: UInt32?
        for row in rows where row.state != .retired {
            guard let wrapped = row.wrappedKey else {
                throw VaultError(.recordCorrupt, "data key v\(row.version) has no wrapped key")
            }
            keys[row.version] =
                try known[row.version]
                ?? WrappedKey.unwrap(wrapped, label: .dataKey, version: row.version, master: master)
            if row.state == .active { active = row.version }
        }
        guard let active else { throw VaultError(.notInitialized, "the key ring has no active data key") }
        return (keys, active)
    }

    /// The version that encrypts now, and its key.
    public var active: (version: UInt32, key: SecretBytes) {
        state.withLock { ($0.activeVersion, $0.dataKeys[$0.activeVersion]!) }
    }

    /// The key of `version`, if the ring holds it (retired and unknown versions it does not).
    public func key(version: UInt32) -> SecretBytes? {
        state.withLock { $0.dataKeys[version] }
    }

    /// The data-key rows last loaded.
    public var rows: [DataKeyRow] { state.withLock { $0.rows } }

    /// The master key in use.
    var master: SecretBytes { state.withLock { $0.master } }

    /// Takes in the rows as now stored: new versions are unwrapped, retired ones dropped, and
    /// the active version follows the store. Keys already held are not unwrapped again.
    /// - Parameter master: a replacement master key (after `rotate-master`), if any.
    public func reload(_ rows: [DataKeyRow], master newMaster: SecretBytes? = nil) throws {
        let (master, known) = state.withLock { ($0.master, $0.dataKeys) }
        let (keys, active) = try Self.unwrap(rows, master: newMaster ?? master, known: known)
        state.withLock {
            $0.dataKeys = keys
            $0.rows = rows
            $0.activeVersion = active
            if let newMaster { $0.master = newMaster }
        }
    }
}
