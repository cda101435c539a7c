public import Audit
public import CardTokens
public import Foundation
import GRDB
import SQLiteSupport
public import VaultCrypto

/// ``VaultStore`` on SQLite (GRDB), in `vault.db`.
public struct SQLiteVaultStore: VaultStore {
    let pool: DatabasePool
    let database: VaultDatabase
    let audit: SQLiteAuditLog?
    /// Where the row MAC key comes from: the key ring (which follows root-key rotations made by
    /// other processes), a fixed key (key-ring creation), or none (read-only use).
    private let keyRing: KeyRing?
    private let fixedRowMAC: RowMAC?

    /// - Parameters:
    ///   - audit: the audit log key actions are appended to in the same transaction.
    ///   - rowMACKey: the key of the data-key row MACs (``KeyRing/rowMACKey``); without it the
    ///     store can read the key ring but not change it.
    public init(database: VaultDatabase, audit: SQLiteAuditLog?, rowMACKey: SecretBytes? = nil) {
        self.pool = database.pool
        self.database = database
        self.audit = audit
        self.keyRing = nil
        self.fixedRowMAC = rowMACKey.map(RowMAC.init(key:))
    }

    /// A store whose row MACs follow `keyRing`'s active root version.
    public init(database: VaultDatabase, audit: SQLiteAuditLog?, keyRing: KeyRing) {
        self.pool = database.pool
        self.database = database
        self.audit = audit
        self.keyRing = keyRing
        self.fixedRowMAC = nil
    }

    /// The row MAC in force in `db`: that of the newest root version, taken in first if another
    /// process added it.
    func rowMAC(in db: Database) throws -> RowMAC {
        if let keyRing { return try keyRing.currentRowMAC(db) }
        guard let fixedRowMAC else {
            throw VaultError(.notInitialized, "the store was opened without the row MAC key")
        }
        return fixedRowMAC
    }

    public func keyRing() async throws -> (roots: [RootKeyRow], dataKeys: [DataKeyRow])? {
        try pool.readInPlace { db in
            let roots = try RootKeyRow.all(db)
            guard !roots.isEmpty else { return nil }
            return (roots, try Self.dataKeys(db))
        }
    }

    static func dataKeys(_ db: Database) throws -> [DataKeyRow] {
        let hasMAC = try db.columns(in: "data_keys").contains { $0.name == "mac" }
        return try Row.fetchAll(db, sql: "SELECT * FROM data_keys ORDER BY version").map { row in
            let wrapped: Data? = row["wrapped_key"]
            let state = DataKeyState(rawValue: row["state"])
            let createdAtMs: Int64 = row["created_at_ms"]
            // A state the vault never writes is read with no MAC, so that it fails verification.
            let mac: Data? = hasMAC && state != nil ? row["mac"] : nil
            return DataKeyRow(
                version: row["version"], state: state ?? .retired, wrappedKey: wrapped.map { [UInt8]($0) },
                createdAt: Date(milliseconds: createdAtMs), createdAtMs: createdAtMs, mac: mac.map { [UInt8]($0) })
        }
    }

    /// Writes a data-key row's state, wrapped key and MAC.
    static func writeDataKey(_ row: DataKeyRow, rowMAC: RowMAC, in db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO data_keys (version, state, wrapped_key, created_at_ms, mac) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT(version) DO UPDATE SET state = excluded.state, wrapped_key = excluded.wrapped_key,
                    mac = excluded.mac
                """,
            arguments: [
                row.version, row.state.rawValue, row.wrappedKey.map { Data($0) }, row.createdAtMs,
                Data(rowMAC.mac(of: row)),
            ])
    }

    /// The data-key rows, each checked against its MAC: a key-ring change never builds on a row
    /// edited without the key.
    static func verifiedDataKeys(_ db: Database, rowMAC: RowMAC) throws -> [DataKeyRow] {
        let rows = try dataKeys(db)
        if let bad = rows.first(where: { !rowMAC.verify($0) }) {
            throw VaultError(
                .recordCorrupt,
                "data key v\(bad.version) fails its integrity check: the row was changed without the key")
        }
        return rows
    }

    /// Checks, inside a key-ring transaction, that `master` still opens every stored root-key
    /// version: another process may have run `rotate-master` since the caller loaded its key.
    /// - Returns: the root-key rows and their unwrapped keys, oldest first.
    static func checkMaster(
        _ master: SecretBytes, in db: Database
    ) throws -> [(row: RootKeyRow, key: SecretBytes)] {
        let roots = try RootKeyRow.all(db)
        guard !roots.isEmpty else { throw VaultError(.notInitialized, "the vault has no key ring") }
        do {
            return try RootKeyRow.unwrapAll(roots, master: master)
        } catch VaultError.Code.wrongMasterKey {
            throw VaultError(.masterKeyChanged, "the master key changed while this command ran; run it again")
        }
    }

    public func createKeyRing(
        wrappedRoot: [UInt8], wrappedFirstKey: [UInt8], at date: Date, audit events: [AuditEvent]
    )
        async throws
    {
        try await pool.write { [audit] db in
            let rowMAC = try rowMAC(in: db)
            guard try Int.fetchOne(db, sql: "SELECT count(*) FROM system_keys") == 0 else {
                throw VaultError(.alreadyInitialized, "the vault already has a key ring")
            }
            try RootKeyRow(version: 0, wrappedKey: wrappedRoot, createdAtMs: date.milliseconds).insert(in: db)
            try Self.writeDataKey(
                DataKeyRow(version: 1, state: .active, wrappedKey: wrappedFirstKey, createdAt: date), rowMAC: rowMAC,
                in: db)
            // The log's first record is its genesis record, bound to this key ring (CRYPTO.md §11).
            try audit?.appendGenesis(events, keyRingCreatedAtMs: date.milliseconds, in: db)
        }
    }

    public func commit(_ writes: [CardWrite]) async throws -> [CardWriteOutcome] {
        try await pool.write { [audit] db in
            let insertCard = try RawStatement(
                db,
                """
                INSERT INTO cards (token, format, bin, last4, brand, exp_month, exp_year, fingerprint,
                    fingerprint_prefix, key_version, ciphertext, created_at_ms, tenant, created_by,
                    fingerprint_version, cvk_version)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(token) DO NOTHING
                """)
            let upsertCVV = try RawStatement(
                db,
                """
                INSERT INTO cvvs (token, epoch, ciphertext, expires_at_ms) VALUES (?, ?, ?, ?)
                ON CONFLICT(token) DO UPDATE SET epoch = excluded.epoch,
                    ciphertext = excluded.ciphertext, expires_at_ms = excluded.expires_at_ms
                """)
            // Checked inside the write transaction, which serialises with rotate and retire: a
            // record can never land under a version that is no longer active.
            let active = try Int64.fetchOne(db, sql: "SELECT version FROM data_keys WHERE state = 'active'")
            var outcomes = [CardWriteOutcome]()
            outcomes.reserveCapacity(writes.count)
            for write in writes {
                let metadata = write.card.metadata
                guard Int64(write.card.keyVersion) == active else {
                    outcomes.append(.staleKey)
                    continue
                }
                switch write.mode {
                case .cvvOnly:
                    guard try Self.cardExists(db, metadata.token.rawValue) else {
                        outcomes.append(.missing)
                        continue
                    }
                case .insert, .issue:
                    if write.mode == .issue,
                        try Self.anyCard(
                            db,
                            fingerprints: [(write.card.fingerprintVersion, write.card.fingerprint)]
                                + write.olderFingerprints)
                    {
                        outcomes.append(.fingerprintTaken)
                        continue
                    }
                    if write.dedupe,
                        let existing = try Self.card(
                            db,
                            fingerprints: [(write.card.fingerprintVersion, write.card.fingerprint)]
                                + write.olderFingerprints, format: metadata.format,
                            createdBy: write.card.createdBy, now: metadata.createdAt)
                    {
                        outcomes.append(.existing(existing))
                        continue
                    }
                    if metadata.format == .numeric, try Self.wasDeleted(db, metadata.token.rawValue) {
                        outcomes.append(.tokenTaken)
                        continue
                    }
                    try insertCard.bind(1, metadata.token.rawValue)
                    try insertCard.bind(2, metadata.format.rawValue)
                    try insertCard.bind(3, metadata.bin)
                    try insertCard.bind(4, metadata.last4)
                    try insertCard.bind(5, metadata.brand.rawValue)
                    try insertCard.bind(6, Int64(metadata.expMonth))
                    try insertCard.bind(7, Int64(metadata.expYear))
                    try insertCard.bind(8, write.card.fingerprint)
                    try insertCard.bind(9, Self.fingerprintPrefix(write.card.fingerprint))
                    try insertCard.bind(10, Int64(write.card.keyVersion))
                    try insertCard.bind(11, write.card.ciphertext)
                    try insertCard.bind(12, metadata.createdAt.milliseconds)
                    try insertCard.bind(13, write.card.tenant)
                    try insertCard.bind(14, write.card.createdBy)
                    try insertCard.bind(15, Int64(write.card.fingerprintVersion))
                    try insertCard.bind(16, write.card.cvkVersion.map(Int64.init))
                    guard try insertCard.run() == 1 else {
                        outcomes.append(.tokenTaken)
                        continue
                    }
                }
                if let cvv = write.cvv {
                    try upsertCVV.bind(1, metadata.token.rawValue)
                    try upsertCVV.bind(2, Int64(bitPattern: cvv.epoch))
                    try upsertCVV.bind(3, cvv.ciphertext)
                    try upsertCVV.bind(4, cvv.expiresAt.milliseconds)
                    _ = try upsertCVV.run()
                }
                if !write.audit.isEmpty {
                    guard let audit else {
                        throw VaultError(.notInitialized, "the store was opened without its audit log")
                    }
                    try audit.append(write.audit, in: db)
                }
                outcomes.append(.stored)
            }
            return outcomes
        }
    }

    /// Whether any record, of any tenant, creator or format, has one of `fingerprints` (each
    /// under its root version): the PAN is in the vault.
    /// Whether a card stored or an issued card deleted has one of `fingerprints`.
    private static func anyCard(
        _ db: Database, fingerprints: [(version: UInt32, fingerprint: [UInt8])]
    ) throws -> Bool {
        for (version, fingerprint) in fingerprints {
            let found = try Bool.fetchOne(
                db,
                sql: """
                    SELECT EXISTS (SELECT 1 FROM cards WHERE fingerprint_prefix = ? AND fingerprint = ?
                        AND fingerprint_version = ?)
                    OR EXISTS (SELECT 1 FROM retired_issued_pans WHERE fingerprint_version = ? AND fingerprint = ?)
                    """,
                arguments: [fingerprintPrefix(fingerprint), Data(fingerprint), version, version, Data(fingerprint)])
            if found == true { return true }
        }
        return false
    }

    private static func cardExists(_ db: Database, _ token: String) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM cards WHERE token = ?)", arguments: [token]) ?? false
    }

    private static func wasDeleted(_ db: Database, _ token: String) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM deleted_tokens WHERE token = ?)", arguments: [token])
            ?? false
    }

    private static let cardColumns = """
        cards.token, cards.format, cards.bin, cards.last4, cards.brand, cards.exp_month, cards.exp_year,
        cards.fingerprint, cards.key_version, cards.ciphertext, cards.created_at_ms, cards.tenant, cards.created_by,
        cards.fingerprint_version, cards.cvk_version, cvvs.expires_at_ms AS cvv_expires_at_ms,
        cvvs.epoch AS cvv_epoch
        """

    /// The first 8 bytes of a fingerprint as a signed big-endian integer: the dedupe index holds
    /// this rather than the 16-byte blob and format, so it is half the size and a random insert
    /// dirties fewer pages; the full fingerprint and format are compared on the few rows it finds.
    static func fingerprintPrefix(_ fingerprint: [UInt8]) -> Int64 {
        Int64(bitPattern: fingerprint.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }

    /// The first record of `createdBy` with one of `fingerprints` (each under its root version).
    private static func card(
        _ db: Database, fingerprints: [(version: UInt32, fingerprint: [UInt8])], format: TokenFormat,
        createdBy: String, now: Date
    ) throws
        -> StoredCard?
    {
        for (version, fingerprint) in fingerprints {
            let found = try Row.fetchOne(
                db,
                sql:
                    "SELECT \(cardColumns) FROM cards LEFT JOIN cvvs ON cvvs.token = cards.token AND cvvs.expires_at_ms > ? "
                    + "WHERE cards.fingerprint_prefix = ? AND cards.fingerprint = ? AND cards.fingerprint_version = ? "
                    + "AND cards.format = ? AND cards.created_by = ? ORDER BY cards.id LIMIT 1",
                arguments: [
                    now.milliseconds, fingerprintPrefix(fingerprint), Data(fingerprint), version, format.rawValue,
                    createdBy,
                ]
            ).map(storedCard)
            if let found { return found }
        }
        return nil
    }

    private static func storedCard(_ row: Row) -> StoredCard {
        let fingerprint: Data = row["fingerprint"]
        let ciphertext: Data = row["ciphertext"]
        let cvvExpiry: Int64? = row["cvv_expires_at_ms"]
        let cvvEpoch: Int64? = row["cvv_epoch"]
        let cvkVersion: Int64? = row["cvk_version"]
        let metadata = CardMetadata(
            token: Token(unchecked: row["token"]), format: TokenFormat(rawValue: row["format"]) ?? .opaque,
            bin: row["bin"], last4: row["last4"], brand: CardBrand(rawValue: row["brand"]) ?? .unknown,
            expMonth: row["exp_month"], expYear: row["exp_year"], fingerprint: "",
            createdAt: Date(milliseconds: row["created_at_ms"]), cvvExpiresAt: cvvExpiry.map(Date.init(milliseconds:)))
        return StoredCard(
            metadata: metadata, keyVersion: row["key_version"], ciphertext: [UInt8](ciphertext),
            fingerprint: [UInt8](fingerprint),
            fingerprintVersion: UInt32(
                truncatingIfNeeded: Int64.fromDatabaseValue(row["fingerprint_version"] as DatabaseValue) ?? -1),
            tenant: row["tenant"],
            createdBy: row["created_by"], cvvEpoch: cvvEpoch.map { UInt64(bitPattern: $0) },
            cvkVersion: cvkVersion.map { UInt32(truncatingIfNeeded: $0) })
    }

    public func card(_ token: Token, now: Date) async throws -> StoredCard? {
        try readCard(token, now: now)
    }

    public func issuedCard(fingerprints: [(version: UInt32, fingerprint: [UInt8])]) async throws -> StoredCard? {
        try pool.readInPlace { db in
            for (version, fingerprint) in fingerprints {
                // The join is by token, through the index: `ON 0` made SQLite scan all of `cvvs` for
                // the row found (Scripts/bench: network authorizations fell to 800/s once the vault
                // held 140,000 CVVs). An issued card never has a `cvvs` row, so nothing joins.
                let found = try Row.fetchOne(
                    db.cachedStatement(
                        sql: "SELECT \(Self.cardColumns) FROM cards LEFT JOIN cvvs ON cvvs.token = cards.token "
                            + "WHERE cards.fingerprint_prefix = ? AND cards.fingerprint = ? "
                            + "AND cards.fingerprint_version = ? AND cards.cvk_version IS NOT NULL LIMIT 1"),
                    arguments: [Self.fingerprintPrefix(fingerprint), Data(fingerprint), version]
                ).map(Self.storedCard)
                if let found { return found }
            }
            return nil
        }
    }

    /// The point lookups of the read paths (metadata, detokenize) run synchronously on the
    /// caller's thread: a reader connection's `sync` executes in place, where the async `read`
    /// would hop to the reader's queue and back — most of the cost of a one-row lookup. One
    /// statement is consistent by itself, so `unsafeRead` skips the BEGIN/COMMIT too.
    private func readCard(_ token: Token, now: Date) throws -> StoredCard? {
        try pool.unsafeRead { db in
            let select = try RawStatement(
                db,
                """
                SELECT cards.token, cards.format, cards.bin, cards.last4, cards.brand, cards.exp_month,
                    cards.exp_year, cards.fingerprint, cards.key_version, cards.ciphertext, cards.created_at_ms,
                    cvvs.expires_at_ms, cards.tenant, cards.created_by, cvvs.epoch, cards.fingerprint_version,
                    cards.cvk_version
                FROM cards LEFT JOIN cvvs ON cvvs.token = cards.token AND cvvs.expires_at_ms > ?
                WHERE cards.token = ?
                """)
            defer { select.reset() }
            try select.bind(1, now.milliseconds)
            try select.bind(2, token.rawValue)
            guard try select.next() else { return nil }
            let metadata = CardMetadata(
                token: Token(unchecked: select.string(0)), format: TokenFormat(rawValue: select.string(1)) ?? .opaque,
                bin: select.string(2), last4: select.string(3),
                brand: CardBrand(rawValue: select.string(4)) ?? .unknown,
                expMonth: Int(select.int64(5)), expYear: Int(select.int64(6)), fingerprint: "",
                createdAt: Date(milliseconds: select.int64(10)),
                cvvExpiresAt: select.isNull(11) ? nil : Date(milliseconds: select.int64(11)))
            return StoredCard(
                metadata: metadata, keyVersion: UInt32(select.int64(8)), ciphertext: select.bytes(9),
                fingerprint: select.bytes(7), fingerprintVersion: UInt32(truncatingIfNeeded: select.int64(15)),
                tenant: select.string(12), createdBy: select.string(13),
                cvvEpoch: select.isNull(14) ? nil : UInt64(bitPattern: select.int64(14)),
                cvkVersion: select.optionalInt64(16).map { UInt32(truncatingIfNeeded: $0) })
        }
    }

    public func ciphertexts(
        of tokens: [Token], tenant: String
    ) async throws -> [Token: StoredCiphertext] {
        try readCiphertexts(of: tokens, tenant: tenant)
    }

    private func readCiphertexts(
        of tokens: [Token], tenant: String
    ) throws -> [Token: StoredCiphertext] {
        guard !tokens.isEmpty else { return [:] }
        // A request holds at most 1,000 tokens: one statement, consistent by itself, so the
        // BEGIN/COMMIT of `read` is skipped.
        return try pool.unsafeRead { db in
            var found = [Token: StoredCiphertext]()
            // One query per chunk; SQLite allows 32,766 parameters, a request has at most 1,000 tokens.
            for chunk in stride(from: 0, to: tokens.count, by: 1000).map({ tokens[$0..<min($0 + 1000, tokens.count)] })
            {
                let placeholders = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
                let select = try RawStatement(
                    db,
                    "SELECT token, key_version, ciphertext, cvk_version FROM cards WHERE tenant = ? AND token IN (\(placeholders))"
                )
                try select.bind(1, tenant)
                for (index, token) in chunk.enumerated() { try select.bind(Int32(index + 2), token.rawValue) }
                while try select.next() {
                    found[Token(unchecked: select.string(0))] = StoredCiphertext(
                        keyVersion: UInt32(select.int64(1)), ciphertext: select.bytes(2),
                        cvkVersion: select.isNull(3) ? nil : UInt32(select.int64(3)))
                }
                select.reset()
            }
            return found
        }
    }

    public func delete(_ token: Token, tenant: String, at date: Date) async throws -> Bool {
        let deleted = try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT OR IGNORE INTO retired_issued_pans (fingerprint_version, fingerprint)
                    SELECT fingerprint_version, fingerprint FROM cards
                    WHERE token = ? AND tenant = ? AND cvk_version IS NOT NULL
                    """,
                arguments: [token.rawValue, tenant])
            try db.execute(
                sql: "DELETE FROM cards WHERE token = ? AND tenant = ?", arguments: [token.rawValue, tenant])
            guard db.changesCount == 1 else { return false }
            try db.execute(sql: "DELETE FROM cvvs WHERE token = ?", arguments: [token.rawValue])
            try db.execute(
                sql: "INSERT OR IGNORE INTO deleted_tokens (token, deleted_at_ms) VALUES (?, ?)",
                arguments: [token.rawValue, date.milliseconds])
            return true
        }
        // The PAN's envelope is still in the WAL: the next coalesced checkpoint removes it.
        if deleted { database.needsScrub() }
        return deleted
    }

    public func takeCVV(of token: Token, now: Date) async throws -> (epoch: UInt64, ciphertext: [UInt8])? {
        defer { database.needsScrub() }
        return try await pool.write { db in
            // The read and the delete share the write transaction: SQLite has one writer at a
            // time, so a concurrent take finds the row already gone. `secure_delete` overwrites it.
            guard
                let row = try Row.fetchOne(
                    db, sql: "SELECT epoch, ciphertext, expires_at_ms FROM cvvs WHERE token = ?",
                    arguments: [token.rawValue])
            else { return nil }
            try db.execute(sql: "DELETE FROM cvvs WHERE token = ?", arguments: [token.rawValue])
            let expiresAt: Int64 = row["expires_at_ms"]
            guard expiresAt > now.milliseconds else { return nil }
            let ciphertext: Data = row["ciphertext"]
            let epoch: Int64 = row["epoch"]
            return (UInt64(bitPattern: epoch), [UInt8](ciphertext))
        }
    }

    public func purgeExpiredCVVs(now: Date) async throws -> Int {
        let purged = try await pool.write { db in
            try db.execute(sql: "DELETE FROM cvvs WHERE expires_at_ms <= ?", arguments: [now.milliseconds])
            return db.changesCount
        }
        if purged > 0 { database.needsScrub() }
        return purged
    }

    public func recordCounts() async throws -> [UInt32: Int] {
        try pool.readInPlace { db in
            var counts = [UInt32: Int]()
            for row in try Row.fetchAll(db, sql: "SELECT key_version, count(*) AS n FROM cards GROUP BY key_version") {
                counts[row["key_version"], default: 0] += row["n"] as Int
            }
            return counts
        }
    }

    public func recordsNotUnder(version: UInt32, atMost: Int? = nil) async throws -> Int {
        try pool.readInPlace { db in
            try Int.fetchOne(
                db, sql: "SELECT count(*) FROM (SELECT 1 FROM cards WHERE key_version < ? LIMIT ?)",
                arguments: [version, atMost ?? -1]) ?? 0
        }
    }

    public func rewrap(
        to version: UInt32, limit: Int, reseal: @Sendable ([RewrapItem]) throws -> [ResealedRecord]
    ) async throws -> Int {
        try await pool.write { db in
            // The key ring may have moved on since the caller read it: never write under a
            // version that is no longer active.
            guard
                try Int64.fetchOne(db, sql: "SELECT version FROM data_keys WHERE state = 'active'") == Int64(version)
            else {
                throw VaultError(.keyVersionActive, "the active key changed during rewrap; run it again")
            }
            // Records are only ever under the active version or older (lower) ones, so
            // `key_version < version` is exactly "not under the active key", and the
            // key_version index makes each batch a range scan instead of a table scan.
            let select = try RawStatement(
                db, "SELECT id, token, ciphertext, fingerprint_version FROM cards WHERE key_version < ? LIMIT ?")
            try select.bind(1, Int64(version))
            try select.bind(2, Int64(limit))
            var ids = [Int64]()
            var items = [RewrapItem]()
            while try select.next() {
                ids.append(select.int64(0))
                items.append(
                    RewrapItem(
                        token: select.string(1), ciphertext: select.bytes(2),
                        fingerprintVersion: UInt32(truncatingIfNeeded: select.int64(3))))
            }
            select.reset()
            guard !items.isEmpty else { return 0 }
            let resealed = try reseal(items)
            let update = try RawStatement(db, "UPDATE cards SET key_version = ?, ciphertext = ? WHERE id = ?")
            // Only records under an older root version get a new fingerprint: the fingerprint
            // index is touched no more than it must be.
            let refingerprint = try RawStatement(
                db,
                """
                UPDATE cards SET key_version = ?, ciphertext = ?, fingerprint = ?, fingerprint_prefix = ?,
                    fingerprint_version = ? WHERE id = ?
                """)
            for (id, record) in zip(ids, resealed) {
                if let fingerprint = record.fingerprint {
                    try refingerprint.bind(1, Int64(version))
                    try refingerprint.bind(2, record.ciphertext)
                    try refingerprint.bind(3, fingerprint.bytes)
                    try refingerprint.bind(4, Self.fingerprintPrefix(fingerprint.bytes))
                    try refingerprint.bind(5, Int64(fingerprint.version))
                    try refingerprint.bind(6, id)
                    _ = try refingerprint.run()
                } else {
                    try update.bind(1, Int64(version))
                    try update.bind(2, record.ciphertext)
                    try update.bind(3, id)
                    _ = try update.run()
                }
            }
            return items.count
        }
    }

    public func retire(version: UInt32, at date: Date, audit event: AuditEvent) async throws {
        try await pool.write { [audit] db in
            let rowMAC = try rowMAC(in: db)
            guard var row = try Self.verifiedDataKeys(db, rowMAC: rowMAC).first(where: { $0.version == version })
            else {
                throw VaultError(.unknownKeyVersion, "there is no data key version \(version)")
            }
            switch row.state {
            case .active:
                throw VaultError(.keyVersionActive, "version \(version) is the active key; rotate first")
            case .retired:
                throw VaultError(.keyVersionRetired, "version \(version) is already retired")
            default:
                break
            }
            // CVVs are under epoch keys, never data keys: only card records can use a version.
            let inUse =
                try Int.fetchOne(db, sql: "SELECT count(*) FROM cards WHERE key_version = ?", arguments: [version]) ?? 0
            guard inUse == 0 else {
                throw VaultError(
                    .keyVersionInUse,
                    "version \(version) still encrypts \(inUse) record(s); run `vault keys rewrap` first")
            }
            row.state = .retired
            row.wrappedKey = nil
            try Self.writeDataKey(row, rowMAC: rowMAC, in: db)
            try db.execute(
                sql: "UPDATE data_keys SET retired_at_ms = ? WHERE version = ?",
                arguments: [date.milliseconds, version])
            try audit?.append([event], in: db)
        }
    }

    public func scrub(attempts: Int) async -> Bool {
        await database.truncateWAL(attempts: attempts)
    }

    public func appendAudit(_ event: AuditEvent) async throws {
        try await audit?.append(event)
    }

}
