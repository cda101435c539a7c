public import Audit
public import Foundation
import GRDB
public import Logging
import SQLiteSupport
import VaultCrypto

/// Where the vault keeps its files.
public struct VaultPaths: Sendable, Hashable {
    /// The data folder (`vault.db`).
    public var dataDirectory: String
    /// The key folder (`master.key`).
    public var keysDirectory: String
    /// The master key file; by default `master.key` in the key folder.
    public var masterKeyPath: String

    public init(dataDirectory: String = "./data", keysDirectory: String = "./Keys", masterKeyPath: String? = nil) {
        self.dataDirectory = dataDirectory
        self.keysDirectory = keysDirectory
        self.masterKeyPath = masterKeyPath ?? (keysDirectory as NSString).appendingPathComponent("master.key")
    }

    /// The audit log's head file (see `AuditHead`): in the data folder, beside `vault.db`.
    public var auditHeadPath: String { (dataDirectory as NSString).appendingPathComponent("audit.head") }

    /// Refuses a master key kept inside the data folder (PCI DSS 3.6.1.2: keys stored apart from
    /// the data they protect): a backup or copy of the data folder would carry both.
    /// - Throws: ``VaultError`` `invalid_argument`.
    public func checkSeparation() throws {
        func resolved(_ path: String) -> String {
            URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        }
        let data = resolved(dataDirectory)
        for (what, path) in [
            ("--keys-dir", keysDirectory), ("--master-key", (masterKeyPath as NSString).deletingLastPathComponent),
        ] {
            let keys = resolved(path)
            func inside(_ child: String, _ parent: String) -> Bool {
                child == parent || child.hasPrefix(parent.hasSuffix("/") ? parent : parent + "/")
            }
            guard !inside(keys, data), !inside(data, keys) else {
                throw VaultError(
                    .invalidArgument,
                    "\(what) \(path) and --data-dir \(dataDirectory) overlap: keep the master key apart from the "
                        + "data it protects (PCI DSS 3.6.1.2)")
            }
        }
    }

    /// Where `rotate-master` stages the new key until the key ring is re-wrapped under it.
    var pendingMasterKeyPath: String { masterKeyPath + ".next" }

    /// The lock held for every key-ring change: `.keyring.lock` beside the master key file.
    public var keyRingLock: KeyRingLock {
        KeyRingLock(masterKeyPath: masterKeyPath, fallbackDirectory: dataDirectory)
    }
}

/// An opened, unlocked vault: everything the CLI and the server use.
public final class Vault: Sendable {
    public let paths: VaultPaths
    public let database: VaultDatabase
    public let keyRing: KeyRing
    public let store: SQLiteVaultStore
    public let audit: SQLiteAuditLog
    public let tokens: TokenVault
    public let keys: KeyManager
    public let credentials: CredentialService
    private let logger: Logger

    private init(
        paths: VaultPaths, database: VaultDatabase, keyRing: KeyRing, logger: Logger, cvvTimeToLive: TimeInterval,
        similarCardLimit: Int
    ) {
        self.paths = paths
        self.database = database
        self.keyRing = keyRing
        self.logger = logger
        audit = SQLiteAuditLog(
            writer: database.pool, keys: Self.auditKeys(keyRing), headFilePath: paths.auditHeadPath,
            genesisRule: Self.genesisRule(keyRing: keyRing))
        store = SQLiteVaultStore(database: database, audit: audit, keyRing: keyRing)
        tokens = TokenVault(
            store: store, keyRing: keyRing, cvvTimeToLive: cvvTimeToLive,
            similarCards: SimilarCardGuard(limit: similarCardLimit), logger: logger)
        keys = KeyManager(store: store, keyRing: keyRing, logger: logger, lock: paths.keyRingLock)
        credentials = CredentialService(database: database, keyRing: keyRing, audit: audit, logger: logger)
    }

    /// The audit key of each root version, from the key ring (which takes in a version another
    /// process added); the log's last segment must be under the newest stored version.
    static func auditKeys(_ keyRing: KeyRing) -> AuditKeys {
        AuditKeys(
            chain: { db, version in try keyRing.root(version: version, in: db)?.auditChain },
            newestVersion: { db in try RootKeyRow.all(db).last?.version ?? 0 })
    }

    /// What the audit log's first record must be: the genesis record bound to the key ring's
    /// creation time, unless the vault's log predates genesis records (a marker row, sealed with
    /// a row MAC when the vault was upgraded); `nil` if there is no key ring.
    static func genesisRule(keyRing: KeyRing) -> @Sendable (Database) throws -> AuditGenesisRule? {
        { db in
            let rowMAC = try keyRing.currentRowMAC(db)
            guard let created = try Int64.fetchOne(db, sql: "SELECT created_at_ms FROM system_keys WHERE name = 'root'")
            else { return nil }
            if let marker = try VaultDatabase.legacyGenesisMarker(db),
                rowMAC.verify(marker.mac, table: VaultDatabase.metaTable, fields: marker.fields)
            {
                return .legacy
            }
            return .bound(keyRingCreatedAtMs: created)
        }
    }

    /// Opens an initialised vault. Checks the master key file first (missing, wrong size,
    /// readable by others) and then that it opens the key ring; on any failure nothing in the
    /// data folder is changed.
    /// - Throws: ``MasterKeyError`` or ``VaultError`` naming the file and the problem.
    /// - Parameter similarCardLimit: see ``SimilarCardGuard``.
    public static func open(
        paths: VaultPaths, logger: Logger, cvvTimeToLive: TimeInterval = 3600, similarCardLimit: Int = 10
    ) async throws -> Vault {
        try paths.checkSeparation()
        let master = try MasterKeyFile.load(path: paths.masterKeyPath)
        let databasePath = (paths.dataDirectory as NSString).appendingPathComponent(VaultDatabase.fileName)
        // The key is checked over a read-only connection: opening the pool writes to vault.db
        // (GRDB makes the WAL non-empty with a CREATE/DROP TABLE), and a refused key must leave
        // the data folder as it was.
        guard let ring = try readKeyRing(databasePath: databasePath) else {
            throw VaultError(.notInitialized, "\(databasePath) has no key ring; run `vault keys init`")
        }
        func keyRing(
            _ master: SecretBytes, _ ring: (roots: [RootKeyRow], dataKeys: [DataKeyRow], hasRowMACs: Bool)
        ) throws -> KeyRing {
            try KeyRing(master: master, roots: ring.roots, dataKeys: ring.dataKeys, verifyingRowMACs: ring.hasRowMACs)
        }
        let opened: KeyRing
        do {
            opened = try keyRing(master, ring)
        } catch VaultError.Code.wrongMasterKey {
            // A `rotate-master` that stopped after re-wrapping but before installing the new
            // file leaves the new key staged beside the old one: finish it, under the key-ring
            // lock so as not to race a `rotate-master` that is about to install it itself.
            opened = try await paths.keyRingLock.withLock {
                // Both read again under the lock: a `rotate-master` may have finished meanwhile.
                guard let ring = try readKeyRing(databasePath: databasePath) else {
                    throw VaultError(.notInitialized, "\(databasePath) has no key ring; run `vault keys init`")
                }
                if let current = try? MasterKeyFile.load(path: paths.masterKeyPath),
                    let reopened = try? keyRing(current, ring)
                {
                    return reopened
                }
                guard let staged = try? MasterKeyFile.load(path: paths.pendingMasterKeyPath),
                    let recovered = try? keyRing(staged, ring)
                else {
                    throw MasterKeyError(
                        .wrongKey, path: paths.masterKeyPath,
                        problem: "this master key does not open the key ring in \(databasePath)")
                }
                try MasterKeyFile.install(paths.pendingMasterKeyPath, as: paths.masterKeyPath)
                logger.notice("completed an interrupted master-key rotation")
                return recovered
            }
        }
        let keyRing = opened
        let database = try VaultDatabase.open(directory: paths.dataDirectory, create: false)
        try database.migrate(rowMACKey: keyRing.rowMACKey, auditKey: keyRing.auditKey)
        try checkNoRecordIsNewerThanTheActiveKey(database, active: keyRing.active.version)
        // A process that stopped between a delete and its WAL truncation left the old row in
        // the WAL: truncate at every open, not only after a migration.
        database.needsScrub()
        await database.scrubIfNeeded()
        return Vault(
            paths: paths, database: database, keyRing: keyRing, logger: logger, cvvTimeToLive: cvvTimeToLive,
            similarCardLimit: similarCardLimit)
    }

    /// Records are only ever sealed under the active version, which is the newest: one under a
    /// newer version means the key ring was rolled back to an earlier, genuine state (old rows put
    /// back, newer ones deleted), which row MACs alone cannot see. One index lookup.
    private static func checkNoRecordIsNewerThanTheActiveKey(_ database: VaultDatabase, active: UInt32) throws {
        // Only card records are under data keys (CVVs are under in-memory epoch keys).
        let newest = try database.pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT max(key_version) FROM cards")
        }
        if let newest, newest > Int64(active) {
            throw VaultError(
                .recordCorrupt,
                "records are sealed under data key v\(newest), newer than the active key v\(active): "
                    + "the key ring was rolled back")
        }
    }

    /// The wrapped keys in `vault.db`, read without writing to the file; `nil` if it has none.
    private static func readKeyRing(
        databasePath path: String
    ) throws -> (roots: [RootKeyRow], dataKeys: [DataKeyRow], hasRowMACs: Bool)? {
        guard FileManager.default.fileExists(atPath: path) else {
            throw VaultError(.notInitialized, "no vault at \(path); run `vault keys init` first")
        }
        var configuration = Configuration()
        configuration.readonly = true
        configuration.busyMode = .timeout(30)
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        return try queue.read { db in
            guard try db.tableExists("data_keys") else { return nil }
            let roots = try RootKeyRow.all(db)
            guard !roots.isEmpty else { return nil }
            return (roots, try SQLiteVaultStore.dataKeys(db), try hasRowMACs(db))
        }
    }

    /// Whether the migration that adds row MACs has run (before it, the rows have none to check).
    /// Whether `master` opens every root-key version as stored now (after a failed
    /// `rotate-master`: did its re-wrap commit?).
    private func opensKeyRing(_ master: SecretBytes) -> Bool {
        guard let roots = try? database.pool.read({ db in try RootKeyRow.all(db) }), !roots.isEmpty else {
            return false
        }
        return (try? RootKeyRow.unwrapAll(roots, master: master)) != nil
    }

    static func hasRowMACs(_ db: Database) throws -> Bool {
        guard try db.tableExists("grdb_migrations") else { return false }
        return try Bool.fetchOne(
            db, sql: "SELECT EXISTS (SELECT 1 FROM grdb_migrations WHERE identifier = ?)",
            arguments: [VaultDatabase.rowMACMigration]) ?? false
    }

    /// Reloads the key ring from the store. If the master key in memory no longer opens it
    /// (another process ran `rotate-master`), reads the master key file again.
    public func refreshKeys() async throws {
        do {
            try await keys.refresh()
        } catch VaultError.Code.wrongMasterKey {
            let master = try MasterKeyFile.load(path: paths.masterKeyPath)
            guard let ring = try await store.keyRing() else {
                throw VaultError(.notInitialized, "the vault has no key ring")
            }
            try keys.reload(ring.dataKeys, roots: ring.roots, master: master)
            logger.notice("master key reloaded after a master-key rotation")
        }
    }

    /// What `vault keys init` did.
    public struct InitResult: Sendable, Hashable {
        public var createdMasterKey: Bool
        public var createdKeyRing: Bool
    }

    /// Creates the master key and the key ring (root key, data key v1) where absent.
    /// Never overwrites: an existing master key is checked against an existing key ring, and a
    /// key ring without its master key is an error (a new key could not open it).
    public static func initialize(paths: VaultPaths, logger: Logger) async throws -> InitResult {
        try paths.checkSeparation()
        let databasePath = (paths.dataDirectory as NSString).appendingPathComponent(VaultDatabase.fileName)
        let masterExists = FileManager.default.fileExists(atPath: paths.masterKeyPath)
        if !masterExists, FileManager.default.fileExists(atPath: databasePath) {
            throw MasterKeyError(
                .missing, path: paths.masterKeyPath,
                problem: "file not found, but \(databasePath) exists; a new master key could not open it. "
                    + "Restore the master key or use --keys-dir/--master-key")
        }
        if !masterExists {
            try FileManager.default.createDirectory(
                atPath: paths.keysDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        // The lock file lives beside the master key: its folder must exist first.
        try FileManager.default.createDirectory(
            atPath: (paths.masterKeyPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700])
        return try await paths.keyRingLock.withLock {
            try await initializeLocked(paths: paths, masterExists: masterExists, logger: logger)
        }
    }

    private static func initializeLocked(
        paths: VaultPaths, masterExists: Bool, logger: Logger
    ) async throws -> InitResult {
        let master: SecretBytes
        if masterExists {
            master = try MasterKeyFile.load(path: paths.masterKeyPath)
        } else {
            master = try MasterKeyFile.create(path: paths.masterKeyPath)
        }
        let database = try VaultDatabase.open(directory: paths.dataDirectory, create: true)
        // Up to the row MACs first: adding them to an existing key ring needs its key.
        try database.migrate(upTo: "audit.v1")
        let store = SQLiteVaultStore(database: database, audit: nil)
        if let ring = try await store.keyRing() {
            // Both exist: make sure they belong together.
            let rowMACsExist = try database.pool.readInPlace { db in try Self.hasRowMACs(db) }
            let keyRing: KeyRing
            do {
                keyRing = try KeyRing(
                    master: master, roots: ring.roots, dataKeys: ring.dataKeys, verifyingRowMACs: rowMACsExist)
            } catch VaultError.Code.wrongMasterKey {
                throw MasterKeyError(
                    .wrongKey, path: paths.masterKeyPath,
                    problem: "this master key does not open the key ring in \(database.path)")
            }
            try database.migrate(rowMACKey: keyRing.rowMACKey, auditKey: keyRing.auditKey)
            return InitResult(createdMasterKey: !masterExists, createdKeyRing: false)
        }
        try database.migrate()
        let root = SecretBytes(randomCount: KeyDerivation.rootKeyByteCount)
        let firstKey = SecretBytes(randomCount: SecretBox.keyByteCount)
        let wrappedRoot = WrappedKey.wrap(root, label: .root, version: 0, master: master)
        let wrappedFirst = WrappedKey.wrap(firstKey, label: .dataKey, version: 1, master: master)
        let auditKey = try KeyDerivation.deriveSubkey(id: 1, context: KeyRing.Subkey.audit.rawValue, from: root)
        let rowMACKey = try KeyDerivation.deriveSubkey(id: 1, context: KeyRing.Subkey.rowMAC.rawValue, from: root)
        let audit = SQLiteAuditLog(
            writer: database.pool, chain: AuditChain(key: auditKey), headFilePath: paths.auditHeadPath)
        let now = Date()
        var events = [AuditEvent]()
        if !masterExists {
            events.append(
                AuditEvent(
                    actor: "admin:cli", type: "keys.init_master", time: now, outcome: .success, origin: "cli",
                    objects: ["master_key"]))
        }
        events.append(
            AuditEvent(
                actor: "admin:cli", type: "keys.init", time: now, outcome: .success, origin: "cli",
                objects: ["root_key", "data_key:1"]))
        try await SQLiteVaultStore(database: database, audit: audit, rowMACKey: rowMACKey).createKeyRing(
            wrappedRoot: wrappedRoot, wrappedFirstKey: wrappedFirst, at: now, audit: events)
        logger.notice("vault initialised", metadata: ["data_dir": "\(paths.dataDirectory)"])
        return InitResult(createdMasterKey: !masterExists, createdKeyRing: true)
    }

    /// Re-wraps every key under the master key in `newKeyPath` and installs that key as the
    /// vault's master key file. Crash-safe: the new key is staged next to the old one before
    /// the database changes, and ``open(paths:logger:cvvTimeToLive:similarCardLimit:)`` finishes an interrupted run.
    ///
    /// Holds the key-ring lock from staging to installing, so no other key-ring change runs in
    /// between; a `rotate` that loaded the old key before is refused (`master_key_changed`).
    /// - Throws: ``VaultError`` `master_key_changed` if another `rotate-master` ran since this
    ///   vault was opened.
    public func rotateMaster(newKeyPath: String, by actor: KeyManager.Actor = .cli) async throws {
        let newMaster = try MasterKeyFile.load(path: newKeyPath)
        try await paths.keyRingLock.withLock {
            let staged = paths.pendingMasterKeyPath
            if FileManager.default.fileExists(atPath: staged) {
                try FileManager.default.removeItem(atPath: staged)
            }
            try MasterKeyFile.write(newMaster, to: staged)
            do {
                try await keys.rewrapKeyRing(under: newMaster, by: actor)
            } catch {
                // Only if the ring is still under the old key: once the re-wrap committed, the
                // staged key is the only one that opens vault.db, and `open` installs it.
                if (try? MasterKeyFile.load(path: paths.masterKeyPath)).map(opensKeyRing) == true {
                    try? FileManager.default.removeItem(atPath: staged)
                }
                throw error
            }
            try MasterKeyFile.install(staged, as: paths.masterKeyPath)
        }
        logger.notice("master key rotated")
    }
}
