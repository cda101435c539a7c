import Audit
import Foundation
public import GRDB
import SQLiteSupport
import Synchronization
public import VaultCrypto

/// The cardholder-data database (`vault.db`): key ring, card records, CVVs, credentials and
/// the audit log. SQLite in WAL mode with `synchronous = FULL` (a commit is on disk before it
/// is acknowledged) and `secure_delete` (deleted rows are zeroed in `vault.db`).
///
/// `secure_delete` does not reach `vault.db-wal`: the frames written before a delete or an
/// update still hold the old row until a checkpoint copies the newest pages back and the WAL
/// is emptied. So destructive operations scrub it: ``truncateWAL(attempts:)`` synchronously
/// (retire, rewrap, master-key rotation), or, for per-request deletes, ``needsScrub()`` and the
/// server's maintenance task calling ``scrubIfNeeded()`` once a second, so a request never
/// pays for a checkpoint.
public final class VaultDatabase: Sendable {
    /// The file name inside the data folder.
    public static let fileName = "vault.db"
    /// The WAL is cut back to this size whenever it restarts (`journal_size_limit`), so stale
    /// frames beyond it do not linger in a file that once grew large. Above one normal
    /// checkpoint cycle (8,000 pages, ≈33 MB with frame headers, plus the commit that crosses
    /// it): a smaller limit would cut the WAL at every restart and make every commit until it
    /// has regrown extend the file, so that each `fdatasync` writes the inode too (measured:
    /// durable single-card tokenize ≈25% slower at 4 MiB). Deleted rows never rely on it: the
    /// WAL is truncated to zero after every destructive operation (``truncateWAL(attempts:)``).
    static let journalSizeLimit = 64 * 1024 * 1024
    /// The busy timeout the connections run with, and the shorter one a checkpoint waits for
    /// readers with (it holds the writer meanwhile).
    static let busyTimeoutMilliseconds = 30_000
    static let checkpointBusyTimeoutMilliseconds = 100

    public let pool: DatabasePool
    public let path: String
    private let scrubPending = Atomic<Bool>(false)

    private init(pool: DatabasePool, path: String) {
        self.pool = pool
        self.path = path
    }

    /// Opens `vault.db` in `directory`.
    /// - Parameter create: create the folder and the file if missing; otherwise a missing
    ///   file is a ``VaultError`` `vault_not_initialized`.
    public static func open(directory: String, create: Bool) throws -> VaultDatabase {
        let path = (directory as NSString).appendingPathComponent(fileName)
        guard create || FileManager.default.fileExists(atPath: path) else {
            throw VaultError(.notInitialized, "no vault at \(path); run `vault keys init` first")
        }
        var configuration = Configuration()
        configuration.busyMode = .timeout(Double(busyTimeoutMilliseconds) / 1000)
        configuration.label = "vault"
        configuration.prepareDatabase { db in
            // cache_size/mmap_size: the token and fingerprint indexes take random inserts; keeping
            // their pages in memory avoids a read system call per page miss. The WAL is
            // checkpointed every 8,000 pages (≈32 MB) rather than 1,000 to batch that work.
            try db.execute(
                sql: """
                    PRAGMA secure_delete = ON; PRAGMA synchronous = FULL; PRAGMA cache_size = -131072;
                    PRAGMA mmap_size = 1073741824; PRAGMA wal_autocheckpoint = 8000;
                    PRAGMA journal_size_limit = \(journalSizeLimit)
                    """)
        }
        // Owner-only before SQLite opens it (and so its -wal and -shm), in a 0700 folder;
        // `synchronous = FULL` on the writer, so that a commit is on disk before it is acknowledged.
        let pool = try DatabaseFile.openDurablePool(
            directory: directory, fileName: fileName, configuration: configuration)
        return VaultDatabase(pool: pool, path: path)
    }

    /// Notes that a row was deleted whose old copy may be in the WAL; ``scrubIfNeeded()`` then
    /// truncates it. Cheap: the request path only sets a flag.
    public func needsScrub() {
        scrubPending.store(true, ordering: .relaxed)
    }

    /// Truncates the WAL if a delete asked for it since the last time (one attempt; if readers
    /// block it, the flag stays set for the next call). The server's maintenance task calls
    /// this once a second.
    /// - Returns: whether the WAL was truncated.
    @discardableResult
    public func scrubIfNeeded() async -> Bool {
        guard scrubPending.exchange(false, ordering: .relaxed) else { return false }
        let done = await truncateWAL(attempts: 1)
        if !done { needsScrub() }
        return done
    }

    /// `PRAGMA wal_checkpoint(TRUNCATE)`: copies every WAL frame into `vault.db` (where
    /// `secure_delete` has zeroed deleted rows) and truncates `vault.db-wal` to zero bytes, so
    /// no deleted row or replaced key survives in it. A reader still on an older snapshot (in
    /// this or another process) blocks it; each attempt waits for readers at most
    /// `checkpointBusyTimeoutMilliseconds` while holding the writer, then lets writes through
    /// for a moment before the next.
    /// - Returns: whether the WAL was emptied within `attempts` tries (errors count as failures).
    @discardableResult
    public func truncateWAL(attempts: Int = 20) async -> Bool {
        for attempt in 0..<max(attempts, 1) {
            if attempt > 0 { try? await Task.sleep(for: .milliseconds(20)) }
            let done = try? await pool.writeWithoutTransaction { db -> Bool in
                try db.execute(sql: "PRAGMA busy_timeout = \(Self.checkpointBusyTimeoutMilliseconds)")
                defer { try? db.execute(sql: "PRAGMA busy_timeout = \(Self.busyTimeoutMilliseconds)") }
                // One row: (busy, WAL frames, frames checkpointed); busy = 1 if blocked.
                let row = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
                return row.map { ($0[0] as Int?) == 0 } ?? false
            }
            if done == true { return true }
        }
        return false
    }

    /// Whether the schema has been created.
    public func isInitialized() throws -> Bool {
        try pool.read { db in try db.tableExists("data_keys") }
    }

    /// Brings the schema up to date.
    /// - Parameters:
    ///   - rowMACKey: the row MAC key (``KeyRing/rowMACKey``). Needed once, by the migration that
    ///     adds the row MACs (`vault.v2`) to a vault that already has a key ring or credentials:
    ///     it computes their MACs (see docs/CRYPTO.md §13.8).
    ///   - auditKey: the audit MAC key: that one-time upgrade runs only on a genuine audit log
    ///     from before genesis records.
    ///   - target: stop after this migration (default: all).
    public func migrate(rowMACKey: SecretBytes? = nil, auditKey: SecretBytes? = nil, upTo target: String? = nil) throws
    {
        let migrator = Self.migrator(
            rowMAC: rowMACKey.map(RowMAC.init(key:)), auditChain: auditKey.map(AuditChain.init(key:)))
        let applied = try pool.read { db in try migrator.appliedIdentifiers(db) }
        if let target {
            // GRDB stops the process when asked to migrate up to a migration already passed.
            guard !applied.contains(target) else { return }
            try migrator.migrate(pool, upTo: target)
        } else {
            try migrator.migrate(pool)
        }
        if !applied.isEmpty, !applied.contains(Self.cvvEpochsMigration) {
            // The CVVs just deleted were under data keys: take their WAL copies out too.
            needsScrub()
        }
    }

    /// The migration that adds the row MACs.
    static let rowMACMigration = "vault.v2"
    /// Moves held CVVs from data keys to in-memory epoch keys (docs/CRYPTO.md §7).
    static let cvvEpochsMigration = "vault.cvv-epochs"

    static func migrator(rowMAC: RowMAC?, auditChain: AuditChain?) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("vault.v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE system_keys (
                        name TEXT PRIMARY KEY,
                        wrapped_key BLOB NOT NULL,
                        created_at_ms INTEGER NOT NULL
                    );
                    CREATE TABLE data_keys (
                        version INTEGER PRIMARY KEY CHECK (version > 0),
                        state TEXT NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired')),
                        wrapped_key BLOB CHECK ((state = 'retired') = (wrapped_key IS NULL)),
                        created_at_ms INTEGER NOT NULL,
                        retired_at_ms INTEGER
                    );
                    CREATE UNIQUE INDEX data_keys_one_active ON data_keys(state) WHERE state = 'active';
                    CREATE TABLE cards (
                        id INTEGER PRIMARY KEY,
                        token TEXT NOT NULL UNIQUE,
                        format TEXT NOT NULL,
                        bin TEXT NOT NULL,
                        last4 TEXT NOT NULL,
                        brand TEXT NOT NULL,
                        exp_month INTEGER NOT NULL,
                        exp_year INTEGER NOT NULL,
                        fingerprint BLOB NOT NULL,
                        fingerprint_prefix INTEGER NOT NULL,
                        key_version INTEGER NOT NULL,
                        ciphertext BLOB NOT NULL,
                        created_at_ms INTEGER NOT NULL
                    );
                    CREATE INDEX cards_fingerprint ON cards(fingerprint_prefix);
                    CREATE INDEX cards_key_version ON cards(key_version);
                    CREATE TABLE cvvs (
                        id INTEGER PRIMARY KEY,
                        token TEXT NOT NULL UNIQUE REFERENCES cards(token) ON DELETE CASCADE,
                        key_version INTEGER NOT NULL,
                        ciphertext BLOB NOT NULL,
                        expires_at_ms INTEGER NOT NULL
                    );
                    CREATE INDEX cvvs_expiry ON cvvs(expires_at_ms);
                    CREATE INDEX cvvs_key_version ON cvvs(key_version);
                    CREATE TABLE deleted_tokens (
                        token TEXT PRIMARY KEY,
                        deleted_at_ms INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE TABLE credentials (
                        id TEXT PRIMARY KEY,
                        name TEXT NOT NULL,
                        scopes TEXT NOT NULL,
                        purposes TEXT NOT NULL,
                        secret_hash BLOB NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        revoked_at_ms INTEGER
                    );
                    """)
        }
        SQLiteAuditLog.registerMigrations(&migrator)
        migrator.registerMigration(rowMACMigration) { db in
            try db.execute(
                sql: """
                    ALTER TABLE data_keys ADD COLUMN mac BLOB;
                    ALTER TABLE credentials ADD COLUMN mac BLOB;
                    CREATE TABLE vault_meta (
                        name TEXT PRIMARY KEY,
                        value TEXT NOT NULL,
                        mac BLOB NOT NULL
                    );
                    """)
            try backfillRowMACs(db, rowMAC: rowMAC, auditChain: auditChain)
        }
        // Tokens belong to a tenant and name the principal that created them (dedupe answers only
        // its creator); credentials name their tenant, and each purpose becomes a grant
        // (`name:pan` / `name:masked`). Rows from before keep the default tenant; their creator is
        // unknown (''), so no caller's dedupe can reach them; detokenize keys keep the full-PAN
        // grant they had. Credential rows whose MAC verified are resealed over the new fields.
        migrator.registerMigration("vault.tenants") { db in
            try db.execute(
                sql: """
                    ALTER TABLE cards ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
                    ALTER TABLE cards ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
                    """)
            let before = try CredentialRow.all(in: db)
            try db.execute(sql: "ALTER TABLE credentials ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default'")
            guard !before.isEmpty else { return }
            guard let rowMAC else {
                throw VaultError(
                    .notInitialized,
                    "upgrading vault.db needs its master key: run a `vault` command that opens the vault")
            }
            for var row in before {
                let genuine = row.verifies(with: rowMAC)
                row.purposes = row.purposes.split(separator: " ").map { $0.contains(":") ? String($0) : "\($0):pan" }
                    .joined(separator: " ")
                if genuine { row = row.sealed(with: rowMAC) }
                try db.execute(
                    sql: "UPDATE credentials SET purposes = ?, mac = ? WHERE id = ?",
                    arguments: [row.purposes, row.mac.map { Data($0) }, row.id])
            }
        }
        migrator.registerMigration(cvvEpochsMigration) { db in
            // CVVs sealed under a data key would open with the master key and vault.db, and no
            // process holds an epoch key for them: they are dropped (held CVVs never survive a
            // restart). `cvvs.epoch` names the in-memory key that seals a CVV from now on.
            try db.execute(
                sql: """
                    DELETE FROM cvvs;
                    DROP INDEX cvvs_key_version;
                    ALTER TABLE cvvs RENAME COLUMN key_version TO epoch;
                    """)
        }
        migrator.registerMigration("vault.root-versions") { db in
            // Which root-key version made each derived value (docs/CRYPTO.md §13.9): until now
            // there was only version 0. Adding a column with a constant default rewrites nothing.
            try db.execute(
                sql: """
                    ALTER TABLE cards ADD COLUMN fingerprint_version INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE credentials ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE audit_head ADD COLUMN key_version INTEGER NOT NULL DEFAULT 0;
                    """)
        }
        migrator.registerMigration("vault.card-verification-keys") { db in
            // Cards issued inside the vault (docs/CRYPTO.md §21): the wrapped card-verification
            // keys, and the version each issued card derives its CVV under (NULL for a card
            // tokenized from outside). An existing vault gets its first key at its first issue.
            try db.execute(
                sql: """
                    CREATE TABLE card_verification_keys (
                        version INTEGER PRIMARY KEY CHECK (version > 0),
                        wrapped_key BLOB NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        mac BLOB NOT NULL
                    );
                    ALTER TABLE cards ADD COLUMN cvk_version INTEGER;
                    """)
        }
        migrator.registerMigration("vault.retired-issued-pans") { db in
            // The fingerprints of issued cards whose token was deleted: their PANs were handed
            // to merchants and may still be charged, so they are never issued again.
            try db.execute(
                sql: """
                    CREATE TABLE retired_issued_pans (
                        fingerprint_version INTEGER NOT NULL,
                        fingerprint BLOB NOT NULL,
                        PRIMARY KEY (fingerprint_version, fingerprint)
                    ) WITHOUT ROWID;
                    """)
        }
        return migrator
    }

    /// Facts about the vault, each row sealed with a row MAC (fields: name, value).
    static let metaTable = "vault_meta"
    /// The `vault_meta` row of a vault whose audit log predates genesis records.
    static let legacyGenesis = (name: "audit_genesis", value: "legacy")

    /// Every `vault_meta` row as stored (an absent or unreadable MAC reads as empty, and fails).
    static func metaRows(_ db: Database) throws -> [(name: String, value: String, mac: [UInt8])] {
        guard try db.tableExists(metaTable) else { return [] }
        return try Row.fetchAll(db, sql: "SELECT name, value, mac FROM vault_meta").map { row in
            (
                String.fromDatabaseValue(row["name"] as DatabaseValue) ?? "",
                String.fromDatabaseValue(row["value"] as DatabaseValue) ?? "",
                Data.fromDatabaseValue(row["mac"] as DatabaseValue).map { [UInt8]($0) } ?? []
            )
        }
    }

    /// The legacy-genesis marker row, if present, with its MAC and the fields it covers.
    static func legacyGenesisMarker(_ db: Database) throws -> (fields: [RowMAC.Field], mac: [UInt8])? {
        guard try db.tableExists(metaTable),
            let row = try Row.fetchOne(
                db, sql: "SELECT value, mac FROM vault_meta WHERE name = ?", arguments: [legacyGenesis.name]),
            let value = String.fromDatabaseValue(row["value"] as DatabaseValue),
            let mac = Data.fromDatabaseValue(row["mac"] as DatabaseValue), value == legacyGenesis.value
        else { return nil }
        return ([.text(legacyGenesis.name), .text(value)], [UInt8](mac))
    }

    /// The one-time backfill of `vault.v2`: MACs for the rows of a vault that predates them,
    /// computed over the rows as they are (trust on first use), in the migration's transaction.
    private static func backfillRowMACs(_ db: Database, rowMAC: RowMAC?, auditChain: AuditChain?) throws {
        let dataKeys = try SQLiteVaultStore.dataKeys(db)
        let credentials = try CredentialRow.all(in: db)
        guard !dataKeys.isEmpty || !credentials.isEmpty else { return }
        guard let rowMAC, let auditChain else {
            throw VaultError(
                .notInitialized, "upgrading vault.db needs its master key: run a `vault` command that opens the vault")
        }
        // Only a vault from before row MACs is upgraded: its audit log must verify under the audit
        // key and begin without a genesis record. A vault created with row MACs has a genesis
        // record, and a writer of vault.db who stripped its MACs (and the migration record) must
        // not get forged rows signed by hiding, editing or wiping that record: any of those
        // breaks the chain, which only the audit key could repair.
        guard try SQLiteAuditLog.isGenuinePreGenesisLog(db, chain: auditChain) else {
            throw VaultError(
                .recordCorrupt,
                "vault.db has key-ring rows without MACs but no genuine audit log from before them: "
                    + "its key ring or audit log was tampered with; refusing to sign its rows")
        }
        for row in dataKeys {
            try db.execute(
                sql: "UPDATE data_keys SET mac = ? WHERE version = ?",
                arguments: [Data(rowMAC.mac(of: row)), row.version])
        }
        for var row in credentials {
            row.mac = rowMAC.mac(table: CredentialRow.table, fields: row.macFields)
            try db.execute(
                sql: "UPDATE credentials SET mac = ? WHERE id = ?", arguments: [row.mac.map { Data($0) }, row.id])
        }
        // Its audit log began before genesis records: say so, sealed, so that verify does not
        // ask record 1 for a genesis commitment it never had.
        let fields: [RowMAC.Field] = [.text(legacyGenesis.name), .text(legacyGenesis.value)]
        try db.execute(
            sql: "INSERT INTO vault_meta (name, value, mac) VALUES (?, ?, ?)",
            arguments: [legacyGenesis.name, legacyGenesis.value, Data(rowMAC.mac(table: metaTable, fields: fields))])
    }
}
