import Audit
public import Foundation
public import Logging
import SQLiteSupport
import VaultCrypto

/// The status of one data-key version, as `vault keys status` shows it.
public struct DataKeyStatus: Sendable, Hashable, Codable {
    public var version: UInt32
    public var state: DataKeyState
    public var createdAt: Date
    /// Card records encrypted under this version (CVVs are under in-memory epoch keys).
    public var records: Int
}

/// The status of one root-key version: what still depends on it.
public struct RootKeyStatus: Sendable, Hashable, Codable {
    public var version: UInt32
    public var createdAt: Date
    /// Card fingerprints made under it (moved to the newest version by `vault keys rewrap`).
    public var fingerprints: Int
    /// Hashes of unrevoked credentials made under it (moved at each key's next authentication).
    public var credentialHashes: Int
}

/// What `vault keys rotate-root` did.
public struct RootRotation: Sendable, Hashable {
    /// The new root-key version.
    public var root: UInt32
    /// The new active data-key version.
    public var dataKey: UInt32
    /// The unrevoked credentials whose rows were re-sealed under the new row key. A row forged by
    /// someone who held the old root key passes the old key's check and is re-sealed too: each
    /// should be one the operator knows (docs/THREAT_MODEL.md).
    public var resealedCredentials: [String]
}

/// The status of the key ring.
public struct KeyRingStatus: Sendable, Hashable, Codable {
    public var activeVersion: UInt32
    public var versions: [DataKeyStatus]
    /// The active (newest) root-key version.
    public var activeRootVersion: UInt32
    public var rootVersions: [RootKeyStatus]
    /// The card-verification keys, oldest first; new cards are issued under the newest.
    public var cardVerificationKeys: [CardVerificationKeyStatus]
    /// Whether the active key is older than the cryptoperiod.
    public var cryptoperiodOverdue: Bool
    public var cryptoperiodDays: Int
}

/// A card-verification key version and the cards issued under it (docs/CRYPTO.md §21).
public struct CardVerificationKeyStatus: Sendable, Hashable, Codable {
    public var version: UInt32
    public var createdAt: Date
    public var issuedCards: Int
}

/// Key life cycle: rotate, rewrap, retire, status, master-key rotation (DESIGN §3).
/// Every action is appended to the audit log in the transaction that performs it.
public struct KeyManager: Sendable {
    private let store: any VaultStore
    private let keyRing: KeyRing
    private let logger: Logger
    private let clock: @Sendable () -> Date
    private let lock: KeyRingLock?

    /// - Parameter lock: the key-folder lock held for every key-ring change (rotate, retire);
    ///   `nil` only where no other process can change the ring.
    public init(
        store: any VaultStore, keyRing: KeyRing, logger: Logger, lock: KeyRingLock? = nil,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.store = store
        self.keyRing = keyRing
        self.logger = logger
        self.lock = lock
        self.clock = clock
    }

    private func locked<R>(_ body: () async throws -> R) async throws -> R {
        guard let lock else { return try await body() }
        return try await lock.withLock(body)
    }

    /// Who acts and from where, for the audit log.
    public struct Actor: Sendable {
        public var name: String
        public var origin: String
        public init(name: String, origin: String) {
            self.name = name
            self.origin = origin
        }
        /// The command line.
        public static let cli = Actor(name: "admin:cli", origin: "cli")
    }

    /// Reads the key ring from the store again (picks up rotations made elsewhere).
    public func refresh() async throws {
        guard let ring = try await store.keyRing() else {
            throw VaultError(.notInitialized, "the vault has no key ring")
        }
        try reload(ring.dataKeys, roots: ring.roots)
        try await checkFingerprintsCurrent(ring)
    }

    /// Once no card record is under a data key older than the one that came with the newest root
    /// version, every fingerprint is under that root version (a root rotation adds a data key in
    /// the same transaction, and `rewrap` re-fingerprints each record it re-encrypts): dedupe
    /// stops looking under older root versions. Judged on one snapshot of the key ring, with one
    /// index lookup.
    private func checkFingerprintsCurrent(_ ring: (roots: [RootKeyRow], dataKeys: [DataKeyRow])) async throws {
        guard let newestRoot = ring.roots.last, newestRoot.version > 0,
            !keyRing.olderFingerprintRoots.isEmpty,
            let active = ring.dataKeys.first(where: { $0.state == .active }),
            active.createdAtMs >= newestRoot.createdAtMs,
            try await store.recordsNotUnder(version: active.version, atMost: 1) == 0
        else { return }
        keyRing.markFingerprintsCurrent(under: newestRoot.version)
    }

    /// Reloads the ring from `rows`, logging (version only) any row it refuses.
    func reload(_ rows: [DataKeyRow], roots: [RootKeyRow], master: SecretBytes? = nil) throws {
        for version in try keyRing.reload(rows, roots: roots, master: master) {
            logger.error(
                "data key row refused: it fails its integrity check or moves to an earlier state; the last verified state is kept",
                metadata: ["version": "\(version)"])
        }
    }

    /// Makes a new data key the active one; the previous becomes decrypt-only.
    /// - Returns: the new active version.
    /// - Throws: ``VaultError`` `master_key_changed` (nothing written) if a `rotate-master`
    ///   installed a new master key after this vault was opened.
    public func rotate(by actor: Actor = .cli) async throws -> UInt32 {
        try await locked {
            let master = keyRing.master
            let newKey = SecretBytes(randomCount: SecretBox.keyByteCount)
            let now = clock()
            let version = try await store.rotate(
                at: now, master: master, newKey: newKey,
                audit: { version in
                    AuditEvent(
                        actor: actor.name, type: "keys.rotate", time: now, outcome: .success, origin: actor.origin,
                        objects: ["data_key:\(version)"])
                })
            try await refresh()
            logger.notice("data key rotated", metadata: ["active_version": "\(version)"])
            return version
        }
    }

    /// Adds a card-verification key version (docs/CRYPTO.md §21.1): cards issued from now on
    /// derive their CVV under it; cards issued before keep their version, and so their CVV.
    /// Audited as `keys.rotate_cvk`.
    /// - Returns: the new version.
    public func rotateCardVerificationKey(by actor: Actor = .cli) async throws -> UInt32 {
        try await locked {
            let now = clock()
            let row = try await store.rotateCardVerificationKey(
                at: now, master: keyRing.master, newKey: SecretBytes(randomCount: KeyedHash.keyByteCount),
                audit: { version in
                    AuditEvent(
                        actor: actor.name, type: "keys.rotate_cvk", time: now, outcome: .success,
                        origin: actor.origin, objects: ["cvk:\(version)"])
                })
            logger.notice("card-verification key rotated", metadata: ["active_version": "\(row.version)"])
            return row.version
        }
    }

    /// Rotates the root key (docs/CRYPTO.md §13.9): adds root version N+1 and a new active data
    /// key; every row MAC is re-sealed under the new row key and the audit log opens a new
    /// segment under the new audit key, in one transaction. Fingerprints move to the new version
    /// with `rewrap` (which the new data key makes pass over every record), credential hashes at
    /// each key's next authentication.
    /// - Returns: the new root and data-key versions.
    public func rotateRoot(by actor: Actor = .cli) async throws -> RootRotation {
        try await locked {
            let now = clock()
            let versions = try await store.rotateRoot(
                at: now, master: keyRing.master, newRoot: SecretBytes(randomCount: KeyDerivation.rootKeyByteCount),
                newDataKey: SecretBytes(randomCount: SecretBox.keyByteCount),
                audit: { root, dataKey in
                    AuditEvent(
                        actor: actor.name, type: "keys.rotate_root", time: now, outcome: .success,
                        origin: actor.origin, objects: ["root_key:\(root)", "data_key:\(dataKey)"])
                })
            try await refresh()
            logger.notice(
                "root key rotated",
                metadata: ["root_version": "\(versions.root)", "active_version": "\(versions.dataKey)"])
            return versions
        }
    }

    /// Re-encrypts every card record not under the active key, `batchSize` per transaction,
    /// while the server keeps serving. Resumable: the state is in the records themselves. At
    /// the end the WAL is truncated (``VaultDatabase/truncateWAL(attempts:)``), so the old
    /// envelopes survive nowhere but in records a retired key no longer opens.
    /// - Parameter progress: called after each batch with (done, total).
    /// - Returns: how many records were re-encrypted.
    public func rewrap(
        batchSize: Int = 5000, by actor: Actor = .cli, progress: (Int, Int) -> Void = { _, _ in }
    ) async throws -> Int {
        guard batchSize > 0 else { throw VaultError(.invalidArgument, "batch size must be positive") }
        try await refresh()
        var (version, key) = keyRing.active
        let total = try await store.recordsNotUnder(version: version, atMost: nil)
        progress(0, total)
        var done = 0
        while true {
            let ring = keyRing
            let target = (version, key)
            // Read after the data key: a root-key rotation adds its root before its data key, so
            // a batch under the new data key always re-fingerprints under the new root.
            let root = keyRing.root
            let count: Int
            do {
                count = try await store.rewrap(to: version, limit: batchSize) { items in
                    try Self.reseal(items, to: target, root: root, keyRing: ring)
                }
            } catch VaultError.Code.keyVersionActive {
                // Rotated meanwhile: continue under the new active key.
                try await refresh()
                (version, key) = keyRing.active
                continue
            }
            guard count > 0 else { break }
            done += count
            progress(min(done, max(total, done)), max(total, done))
        }
        try await store.appendAudit(
            AuditEvent(
                actor: actor.name, type: "keys.rewrap", time: clock(), outcome: .success, origin: actor.origin,
                objects: ["data_key:\(version)"], detail: "rewrapped=\(done)"))
        if done > 0, !(await store.scrub(attempts: Self.scrubAttempts)) {
            logger.warning("the WAL could not be truncated after rewrap; readers kept it busy")
        }
        logger.notice("records rewrapped", metadata: ["count": "\(done)", "active_version": "\(version)"])
        return done
    }

    /// Re-encrypts each record under `target`, and recomputes its fingerprint under `root` if it
    /// was made under an older root version (docs/CRYPTO.md §13.9).
    static func reseal(
        _ items: [RewrapItem], to target: (version: UInt32, key: SecretBytes), root: RootSubkeys, keyRing: KeyRing
    ) throws -> [ResealedRecord] {
        let scratch = SecretBytes(zeroedCount: RecordEnvelope.maximumPlaintextByteCount, protection: .wipedOnRelease)
        var pool = RandomPool(byteCount: SecretBox.nonceByteCount * max(items.count, 1))
        return try items.map { item in
            let count = try TokenVault.open(
                item.ciphertext, kind: .card, token: item.token, keyRing: keyRing, into: scratch)
            return try scratch.withUnsafeBytes { plaintext in
                var fingerprint: (UInt32, [UInt8])?
                if item.fingerprintVersion != root.version {
                    guard let pan = RecordEnvelope.panRange(inCardPlaintext: plaintext, count: count) else {
                        throw VaultError(.recordCorrupt, "record of token \(item.token) has a malformed plaintext")
                    }
                    fingerprint = (
                        root.version,
                        KeyedHash.hash(
                            UnsafeRawBufferPointer(rebasing: plaintext[pan]), key: root.fingerprintKey,
                            outputByteCount: 16)
                    )
                }
                let ciphertext = pool.take(SecretBox.nonceByteCount) { nonce in
                    RecordEnvelope.seal(
                        UnsafeRawBufferPointer(rebasing: plaintext[0..<count]), version: target.version,
                        key: target.key,
                        nonce: nonce)
                }
                return ResealedRecord(ciphertext: ciphertext, fingerprint: fingerprint)
            }
        }
    }

    /// How often a synchronous WAL truncation is tried while readers block it.
    static let scrubAttempts = 25

    /// Retires data key `version`: deletes its wrapped key from `vault.db` (zeroed there by
    /// `secure_delete`), then truncates the WAL so no copy of it is left in `vault.db-wal`.
    /// Refuses while any card record uses it, and for the active key.
    /// - Returns: whether the WAL was truncated too; `false` if readers kept blocking it (a copy
    ///   of the wrapped key then stays in `vault.db-wal` until the next checkpoint).
    @discardableResult
    public func retire(version: UInt32, by actor: Actor = .cli) async throws -> Bool {
        try await locked {
            try await store.retire(
                version: version, at: clock(),
                audit: AuditEvent(
                    actor: actor.name, type: "keys.retire", time: clock(), outcome: .success, origin: actor.origin,
                    objects: ["data_key:\(version)"]))
            try await refresh()
        }
        let scrubbed = await store.scrub(attempts: Self.scrubAttempts)
        logger.notice("data key retired", metadata: ["version": "\(version)", "wal_truncated": "\(scrubbed)"])
        return scrubbed
    }

    /// Versions, states, ages and record counts.
    /// - Parameter cryptoperiodDays: how long a data key may stay active (default 90 days).
    public func status(cryptoperiodDays: Int = 90) async throws -> KeyRingStatus {
        try await refresh()
        let counts = try await store.recordCounts()
        let use = try await store.rootKeyUse()
        let roots = try await store.keyRing()?.roots ?? []
        let rootVersions = roots.map {
            RootKeyStatus(
                version: $0.version, createdAt: Date(milliseconds: $0.createdAtMs),
                fingerprints: use.fingerprints[$0.version] ?? 0,
                credentialHashes: use.credentialHashes[$0.version] ?? 0)
        }
        let rows = keyRing.rows
        let versions = rows.map {
            DataKeyStatus(
                version: $0.version, state: $0.state, createdAt: $0.createdAt, records: counts[$0.version] ?? 0)
        }
        let active = rows.first { $0.state == .active }
        let overdue =
            active.map { clock().timeIntervalSince($0.createdAt) > Double(cryptoperiodDays) * 86_400 } ?? false
        let issued = try await store.issuedCardCounts()
        let cardVerificationKeys = try await store.cardVerificationKeys().map {
            CardVerificationKeyStatus(
                version: $0.version, createdAt: Date(milliseconds: $0.createdAtMs), issuedCards: issued[$0.version] ?? 0
            )
        }
        return KeyRingStatus(
            activeVersion: keyRing.active.version, versions: versions, activeRootVersion: keyRing.root.version,
            rootVersions: rootVersions, cardVerificationKeys: cardVerificationKeys, cryptoperiodOverdue: overdue,
            cryptoperiodDays: cryptoperiodDays)
    }

    /// Re-wraps the root key and every data key under `newMaster`, in one transaction that reads
    /// the key ring, checks it and writes it back. The caller holds the key-ring lock and installs
    /// the new key file (see ``Vault/rotateMaster(newKeyPath:by:)``).
    /// - Throws: ``VaultError`` `master_key_changed` if the master key in memory no longer opens
    ///   the ring (another `rotate-master` ran).
    func rewrapKeyRing(under newMaster: SecretBytes, by actor: Actor) async throws {
        let master = keyRing.master
        guard newMaster != master else {
            throw VaultError(.sameMasterKey, "the new master key is the same as the current one")
        }
        let now = clock()
        try await store.rewrapKeyRing(from: master, to: newMaster) { versions in
            AuditEvent(
                actor: actor.name, type: "keys.rotate_master", time: now, outcome: .success, origin: actor.origin,
                objects: versions.map { "data_key:\($0)" } + ["root_key"])
        }
        // The keys wrapped under the old master stay in the WAL until it is truncated.
        _ = await store.scrub(attempts: Self.scrubAttempts)
        guard let reloaded = try await store.keyRing() else { return }
        try reload(reloaded.dataKeys, roots: reloaded.roots, master: newMaster)
    }
}
