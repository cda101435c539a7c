public import Foundation
import GRDB
import SQLiteSupport
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
/// by another process (the CLI, another server) takes effect without a restart: every root-key
/// version with its derived subkeys (the newest is active), and every non-retired data key.
public final class KeyRing: Sendable {
    public typealias Subkey = RootSubkeys.Subkey

    private struct State {
        var master: SecretBytes
        /// Every root-key version, by version; the highest is active.
        var roots: [UInt32: RootSubkeys]
        var dataKeys: [UInt32: SecretBytes]
        var rows: [DataKeyRow]
        var activeVersion: UInt32
        /// Versions whose stored row the last reload refused.
        var refused: Set<UInt32> = []
        /// The root version under which every card's fingerprint is known to be, once `rewrap`
        /// has moved them all: dedupe then stops looking under older versions.
        var fingerprintsCurrentUnder: UInt32?
    }

    private let state: Mutex<State>
    /// The card-verification keys unwrapped so far, by version (docs/CRYPTO.md §21): a version's
    /// key never changes, so each is unwrapped once.
    private let cardVerificationKeys = Mutex<[UInt32: SecretBytes]>([:])

    /// The key of a card-verification key row, unwrapped under the master key at its first use.
    /// The caller has checked the row's MAC.
    func cardVerificationKey(_ row: CardVerificationKeyRow) throws -> SecretBytes {
        if let known = cardVerificationKeys.withLock({ $0[row.version] }) { return known }
        let key = try row.unwrap(master: master)
        return cardVerificationKeys.withLock { keys in
            if let known = keys[row.version] { return known }
            keys[row.version] = key
            return key
        }
    }

    /// The card-verification key of `version`, if already unwrapped.
    func cardVerificationKey(version: UInt32) -> SecretBytes? {
        cardVerificationKeys.withLock { $0[version] }
    }

    /// The active root version's subkeys.
    public var root: RootSubkeys { state.withLock { $0.roots[$0.roots.keys.max()!]! } }
    /// The subkeys of root version `version`, if the ring holds it.
    public func root(version: UInt32) -> RootSubkeys? { state.withLock { $0.roots[version] } }
    /// The older root versions whose fingerprints dedupe must still look under: all of them until
    /// every card is known to be re-fingerprinted under the newest (``markFingerprintsCurrent(under:)``).
    var olderFingerprintRoots: [RootSubkeys] {
        state.withLock { state in
            let newest = state.roots.keys.max()!
            guard state.fingerprintsCurrentUnder != newest else { return [] }
            return state.roots.values.filter { $0.version != newest }.sorted { $0.version > $1.version }
        }
    }

    /// Records that no card's fingerprint is under a root version older than `version`.
    func markFingerprintsCurrent(under version: UInt32) {
        state.withLock { $0.fingerprintsCurrentUnder = version }
    }

    /// Every root version's subkeys, oldest first.
    public var roots: [RootSubkeys] { state.withLock { $0.roots.values.sorted { $0.version < $1.version } } }

    /// Keyed BLAKE2b key for the internal PAN fingerprint under the active root version.
    public var fingerprintKey: SecretBytes { root.fingerprintKey }
    /// Caller-fingerprint key of the active root version (CRYPTO.md §8.1).
    public var callerFingerprintKey: SecretBytes { root.callerFingerprintKey }
    /// Credential-hash key of the active root version.
    public var credentialKey: SecretBytes { root.credentialKey }
    /// Audit MAC key of the active root version (the log's current segment).
    public var auditKey: SecretBytes { root.auditKey }
    /// Row MAC key of the active root version: every row MAC is under it.
    public var rowMACKey: SecretBytes { root.rowMACKey }
    var rowMAC: RowMAC { root.rowMAC }

    /// Unwraps every root-key version and every non-retired data key.
    /// - Throws: ``VaultError`` `master_key_wrong` if the master key does not open them;
    ///   `record_corrupt` if a data-key row fails its MAC or the active version is not the newest
    ///   non-retired one (the rows were edited without the key).
    public convenience init(master: SecretBytes, roots: [RootKeyRow], dataKeys rows: [DataKeyRow]) throws {
        try self.init(master: master, roots: roots, dataKeys: rows, verifyingRowMACs: true)
    }

    /// The key ring of a vault with one root version (0), wrapped as `wrappedRoot`.
    public convenience init(master: SecretBytes, wrappedRoot: [UInt8], dataKeys rows: [DataKeyRow]) throws {
        try self.init(
            master: master, roots: [RootKeyRow(version: 0, wrappedKey: wrappedRoot, createdAtMs: 0)], dataKeys: rows)
    }

    /// - Parameter verifyingRowMACs: `false` only for a vault whose rows predate row MACs, on
    ///   the way to the migration that adds them.
    init(master: SecretBytes, roots rootRows: [RootKeyRow], dataKeys rows: [DataKeyRow], verifyingRowMACs: Bool) throws
    {
        let roots = try Self.derive(RootKeyRow.unwrapAll(rootRows, master: master))
        let rowMAC = roots[roots.keys.max()!]!.rowMAC
        if verifyingRowMACs, let bad = rows.first(where: { !rowMAC.verify($0) }) {
            throw VaultError(
                .recordCorrupt,
                "data key v\(bad.version) fails its integrity check: the row was changed without the key")
        }
        let (keys, active) = try Self.unwrap(rows, master: master, known: [:])
        state = Mutex(State(master: master, roots: roots, dataKeys: keys, rows: rows, activeVersion: active))
    }

    private static func derive(_ opened: [(row: RootKeyRow, key: SecretBytes)]) throws -> [UInt32: RootSubkeys] {
        var roots = [UInt32: RootSubkeys]()
        for (row, key) in opened { roots[row.version] = try RootSubkeys(root: key, version: row.version) }
        return roots
    }

    /// Takes in root versions added since (by `vault keys rotate-root` in another process): they
    /// are unwrapped and the newest becomes active. A version never goes away from a running ring.
    /// - Returns: whether a new version was added.
    @discardableResult
    func adoptRoots(_ rows: [RootKeyRow]) throws -> Bool {
        let (master, known) = state.withLock { ($0.master, $0.roots) }
        guard rows.contains(where: { known[$0.version] == nil }) else { return false }
        let stored = try Self.derive(RootKeyRow.unwrapAll(rows, master: master))
        state.withLock { $0.roots.merge(stored) { held, _ in held } }
        return true
    }

    /// Reads the root-key rows of `db` and takes in any new version; the row MAC in force in
    /// that snapshot (that of its newest version, even if another task has since taken in a newer one).
    func currentRowMAC(_ db: Database) throws -> RowMAC {
        let rows = try RootKeyRow.all(db)
        try adoptRoots(rows)
        guard let newest = rows.last.flatMap({ root(version: $0.version) }) else { return rowMAC }
        return newest.rowMAC
    }

    /// The subkeys of root version `version`, read from `db` if this process does not hold them
    /// yet; `nil` if the vault has no such version.
    func root(version: UInt32, in db: Database) throws -> RootSubkeys? {
        if let known = root(version: version) { return known }
        try adoptRoots(RootKeyRow.all(db))
        return root(version: version)
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
    public func reload(
        _ stored: [DataKeyRow], roots storedRoots: [RootKeyRow] = [], master newMaster: SecretBytes? = nil
    ) throws -> [UInt32] {
        if let newMaster {
            // Every root version re-wrapped under the new master key must still be the one held.
            let reopened = try Self.derive(RootKeyRow.unwrapAll(storedRoots, master: newMaster))
            let held = state.withLock { $0.roots }
            for (version, root) in reopened where held[version].map({ $0.rowMACKey != root.rowMACKey }) ?? false {
                throw VaultError(.recordCorrupt, "root key v\(version) changed during the master-key rotation")
            }
            state.withLock { $0.master = newMaster }
        }
        try adoptRoots(storedRoots)
        let rowMAC = self.rowMAC
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
        }
        return refused.subtracting(alreadyRefused).sorted()
    }
}
