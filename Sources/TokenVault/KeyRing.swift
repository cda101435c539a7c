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
    /// The creation time exactly as stored (and MAC'd), in milliseconds since 1970.
    public var createdAtMs: Int64
    /// The row's MAC (docs/CRYPTO.md §13.8); `nil` if the row has none or holds a state the vault
    /// never writes.
    public var mac: [UInt8]?

    public init(
        version: UInt32, state: DataKeyState, wrappedKey: [UInt8]?, createdAt: Date, createdAtMs: Int64? = nil,
        mac: [UInt8]? = nil
    ) {
        self.version = version
        self.state = state
        self.wrappedKey = wrappedKey
        self.createdAt = createdAt
        self.createdAtMs = createdAtMs ?? createdAt.milliseconds
        self.mac = mac
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
        case rowMAC = "ROWMAC__"
    }

    private struct State {
        var master: SecretBytes
        var dataKeys: [UInt32: SecretBytes]
        var rows: [DataKeyRow]
        var activeVersion: UInt32
        /// Versions whose stored row the last reload refused.
        var refused: Set<UInt32> = []
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
    /// MAC key of the `credentials` and `data_keys` rows.
    public let rowMACKey: SecretBytes
    let rowMAC: RowMAC

    /// Unwraps every non-retired data key and the root key.
    /// - Throws: ``VaultError`` `master_key_wrong` if the master key does not open them;
    ///   `record_corrupt` if a data-key row fails its MAC or the active version is not the newest
    ///   non-retired one (the rows were edited without the key).
    public convenience init(master: SecretBytes, wrappedRoot: [UInt8], dataKeys rows: [DataKeyRow]) throws {
        try self.init(master: master, wrappedRoot: wrappedRoot, dataKeys: rows, verifyingRowMACs: true)
    }

    /// - Parameter verifyingRowMACs: `false` only for a vault whose rows predate row MACs, on
    ///   the way to the migration that adds them.
    init(master: SecretBytes, wrappedRoot: [UInt8], dataKeys rows: [DataKeyRow], verifyingRowMACs: Bool) throws {
        let root = try WrappedKey.unwrap(wrappedRoot, label: .root, version: 0, master: master)
        fingerprintKey = try KeyDerivation.deriveSubkey(id: 1, context: Subkey.fingerprint.rawValue, from: root)
        callerFingerprintKey = try KeyDerivation.deriveSubkey(
            id: 1, context: Subkey.callerFingerprint.rawValue, from: root)
        credentialKey = try KeyDerivation.deriveSubkey(id: 1, context: Subkey.credentials.rawValue, from: root)
        auditKey = try KeyDerivation.deriveSubkey(id: 1, context: Subkey.audit.rawValue, from: root)
        rowMACKey = try KeyDerivation.deriveSubkey(id: 1, context: Subkey.rowMAC.rawValue, from: root)
        let rowMAC = RowMAC(key: rowMACKey)
        self.rowMAC = rowMAC
        if verifyingRowMACs, let bad = rows.first(where: { !rowMAC.verify($0) }) {
            throw VaultError(
                .recordCorrupt,
                "data key v\(bad.version) fails its integrity check: the row was changed without the key")
        }
        let (keys, active) = try Self.unwrap(rows, master: master, known: [:])
        state = Mutex(State(master: master, dataKeys: keys, rows: rows, activeVersion: active))
    }

    /// The order of the states: a version only ever moves forward through them.
    private static func rank(_ state: DataKeyState) -> Int {
        switch state {
        case .active: 0
        case .decryptOnly: 1
        case .retired: 2
        }
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
        // Rotation always makes the new, highest version active; anything else means the states
        // were edited (an old key made active again).
        let newest = rows.filter { $0.state != .retired }.map(\.version).max()
        guard active == newest else {
            throw VaultError(
                .recordCorrupt, "data key v\(active) is active but is not the newest non-retired version")
        }
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
    ///
    /// A row that fails its MAC, moves back to an earlier state, or vanishes is not obeyed: the
    /// ring keeps what it last verified for that version (and ignores a new version it cannot
    /// verify). If the result's active version is not the newest non-retired one, nothing changes.
    /// - Parameter master: a replacement master key (after `rotate-master`), if any.
    /// - Returns: the versions refused by this reload that were not refused by the one before,
    ///   for the caller to log.
    @discardableResult
    public func reload(_ stored: [DataKeyRow], master newMaster: SecretBytes? = nil) throws -> [UInt32] {
        let (master, known, current, alreadyRefused) = state.withLock {
            ($0.master, $0.dataKeys, $0.rows, $0.refused)
        }
        var effective = Dictionary(current.map { ($0.version, $0) }, uniquingKeysWith: { $1 })
        var refused = Set<UInt32>()
        let storedVersions = Set(stored.map(\.version))
        for row in current where !storedVersions.contains(row.version) { refused.insert(row.version) }
        for row in stored {
            let previous = effective[row.version]
            guard rowMAC.verify(row), previous.map({ Self.rank($0.state) <= Self.rank(row.state) }) ?? true else {
                refused.insert(row.version)
                continue
            }
            effective[row.version] = row
        }
        let rows = effective.values.sorted { $0.version < $1.version }
        let (keys, active) = try Self.unwrap(rows, master: newMaster ?? master, known: known)
        state.withLock {
            $0.dataKeys = keys
            $0.rows = rows
            $0.activeVersion = active
            $0.refused = refused
            if let newMaster { $0.master = newMaster }
        }
        return refused.subtracting(alreadyRefused).sorted()
    }
}
