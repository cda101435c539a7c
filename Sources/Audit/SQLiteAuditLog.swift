public import Foundation
public import GRDB
import GroupCommit
import SQLiteSupport
import VaultCrypto

/// The audit log in the vault's SQLite database (`audit_log`, `audit_head`), with a copy of
/// its head in a file of its own (see ``AuditHead``).
///
/// Appends from concurrent callers share one commit (group commit), so an audit record per
/// detokenize request stays durable without costing a commit each.
/// The audit MAC keys, one per root-key version (docs/CRYPTO.md §11): the log is a chain of
/// segments, each MAC'd under the audit key of one root version.
public struct AuditKeys: Sendable {
    /// The chain of root version `version`, read from the database if this process does not hold
    /// it yet; `nil` if the vault has no such version.
    public var chain: @Sendable (Database, UInt32) throws -> AuditChain?
    /// The vault's newest root version: the log's last segment must be under it (a log cut back
    /// to an older segment is detected). `nil` where the caller cannot say (tools, tests).
    public var newestVersion: (@Sendable (Database) throws -> UInt32)?

    public init(
        chain: @escaping @Sendable (Database, UInt32) throws -> AuditChain?,
        newestVersion: (@Sendable (Database) throws -> UInt32)? = nil
    ) {
        self.chain = chain
        self.newestVersion = newestVersion
    }

    /// One chain for root version 0 only: a vault whose root key never rotated.
    public static func single(_ chain: AuditChain) -> AuditKeys {
        AuditKeys(chain: { _, version in version == 0 ? chain : nil })
    }
}

public final class SQLiteAuditLog: AuditLog {
    private let writer: any DatabaseWriter
    private let keys: AuditKeys
    /// Where the head file lives; `nil` keeps the head in the database only (tests, tools).
    public let headFilePath: String?
    private let committer: GroupCommitter<AuditEvent, Int64>
    private let headFile: AuditHeadFileWriter?
    private let genesisRule: (@Sendable (Database) throws -> AuditGenesisRule?)?

    /// - Parameters:
    ///   - headFilePath: the head file, or `nil` to keep the head in the database only.
    ///   - genesisRule: reads what the log's first record must be, `nil` if the vault has no key
    ///     ring. With it, ``verify()`` refuses an empty log once a key ring exists, so a wiped
    ///     log no longer verifies (docs/CRYPTO.md §11).
    public convenience init(
        writer: any DatabaseWriter, chain: AuditChain, headFilePath: String? = nil,
        genesisRule: (@Sendable (Database) throws -> AuditGenesisRule?)? = nil
    ) {
        self.init(writer: writer, keys: .single(chain), headFilePath: headFilePath, genesisRule: genesisRule)
    }

    /// - Parameter keys: the audit key of each root version.
    public init(
        writer: any DatabaseWriter, keys: AuditKeys, headFilePath: String? = nil,
        genesisRule: (@Sendable (Database) throws -> AuditGenesisRule?)? = nil
    ) {
        self.writer = writer
        self.keys = keys
        self.headFilePath = headFilePath
        self.genesisRule = genesisRule
        let headFile = headFilePath.map(AuditHeadFileWriter.init(path:))
        self.headFile = headFile
        self.committer = GroupCommitter { [keys] events in
            try await writer.write { db in
                try Self.append(events, in: db, keys: keys, headFile: headFile)
            }
        }
    }

    /// Writes the head file from this loop for as long as it runs (a server's service owns
    /// it), coalescing bursts of commits into one write; returns after ``finishHeadFileWrites()``
    /// once what is pending is written. Without it, each commit writes the file itself.
    public func writeHeadFiles() async {
        await headFile?.writeDeferred()
    }

    /// Ends ``writeHeadFiles()`` (graceful shutdown).
    public func finishHeadFileWrites() {
        headFile?.finish()
    }

    /// Creates the tables. Registered by the vault's migrator.
    public static func registerMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("audit.v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE audit_log (
                        sequence INTEGER PRIMARY KEY,
                        time_ms INTEGER NOT NULL,
                        actor TEXT NOT NULL,
                        type TEXT NOT NULL,
                        outcome TEXT NOT NULL,
                        origin TEXT NOT NULL,
                        objects TEXT NOT NULL,
                        purpose TEXT,
                        reference TEXT,
                        detail TEXT,
                        mac BLOB NOT NULL
                    );
                    CREATE INDEX audit_log_time ON audit_log(time_ms);
                    CREATE INDEX audit_log_actor ON audit_log(actor, sequence);
                    CREATE TABLE audit_head (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        sequence INTEGER NOT NULL,
                        mac BLOB NOT NULL,
                        head_mac BLOB NOT NULL
                    );
                    """)
        }
        migrator.registerMigration("audit.v2") { db in
            // Partial: only revocations are indexed, so the detokenize appends pay nothing for it.
            try db.execute(
                sql: """
                    CREATE INDEX audit_log_revocations ON audit_log(type) WHERE type = 'credential.revoke'
                    """)
        }
    }

    /// The objects of every `credential.revoke` record (e.g. `credential:<id>`), through a
    /// partial index: revocations are few. Lets the vault hold a credential revoked even if its
    /// row is put back as it was before (docs/THREAT_MODEL.md).
    public static func revokedObjects(_ db: Database) throws -> Set<String> {
        var objects = Set<String>()
        for text in try String.fetchAll(
            db, sql: "SELECT objects FROM audit_log WHERE type = 'credential.revoke'")
        {
            objects.formUnion(decodeObjects(text) ?? [])
        }
        return objects
    }

    /// Appends durably (group commit); returns the sequence numbers given to the events.
    @discardableResult
    public func append(_ events: [AuditEvent]) async throws -> [Int64] {
        try await committer.submit(events)
    }

    /// Starts the log with its genesis record, inside the transaction that creates the key ring:
    /// the first event's `detail` becomes the genesis commitment to the key ring created at
    /// `keyRingCreatedAtMs` (docs/CRYPTO.md §11). The only way a chain starts.
    /// - Throws: ``AuditLogError`` if the log is not empty.
    @discardableResult
    public func appendGenesis(_ events: [AuditEvent], keyRingCreatedAtMs: Int64, in db: Database) throws -> [Int64] {
        guard var first = events.first else { return [] }
        guard try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_log") == 0,
            try Int.fetchOne(db, sql: "SELECT count(*) FROM audit_head") == 0
        else {
            throw AuditLogError("the audit log already has records; a genesis record starts only an empty log")
        }
        guard let chain = try keys.chain(db, 0) else { throw AuditLogError("no audit key for root key version 0") }
        first.detail = chain.genesisDetail(keyRingCreatedAtMs: keyRingCreatedAtMs)
        return try Self.append([first] + events.dropFirst(), in: db, keys: keys, headFile: headFile, start: .genesis)
    }

    /// Starts the segment of root version `version` inside the transaction that adds that
    /// version: `event` (type `keys.rotate_root`) gets the old segment's closing commitment as its
    /// detail and is MAC'd, like every record after it, under the new version's audit key
    /// (docs/CRYPTO.md §11).
    /// - Throws: ``AuditLogError`` if the log has no head or `version` does not follow the
    ///   current segment's.
    /// - Parameter chain: the new version's chain (its root key is not committed yet).
    @discardableResult
    public func appendSegmentStart(
        _ event: AuditEvent, version: UInt32, chain: AuditChain, in db: Database
    ) throws -> Int64 {
        var event = event
        event.type = AuditChain.segmentStartType
        return try Self.append([event], in: db, keys: keys, headFile: headFile, start: .segment(version, chain))[0]
    }

    /// Whether the log in `db` is a genuine chain from before genesis records: at least one
    /// record, every record's MAC and sequence in order under `chain`, the head in the database
    /// sealing the last one, and a first record that is not a genesis record. Checked before
    /// a vault from before row MACs gets its MACs: a writer of `vault.db` who stripped them
    /// must not be able to have forged rows signed (issue 8 review).
    public static func isGenuinePreGenesisLog(_ db: Database, chain: AuditChain) throws -> Bool {
        var previous = AuditChain.genesis
        var expected: Int64 = 0
        var first: AuditRecord?
        let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM audit_log ORDER BY sequence")
        while let row = try cursor.next() {
            expected += 1
            guard let record = record(row, strict: true), record.sequence == expected,
                ConstantTime.equals(chain.mac(sequence: expected, event: record.event, previous: previous), record.mac)
            else { return false }
            if expected == 1 { first = record }
            previous = record.mac
        }
        guard let first, first.event.detail?.hasPrefix(AuditChain.genesisDetailPrefix) != true,
            let stored = try storedHead(db), stored.sequence == expected, ConstantTime.equals(stored.mac, previous),
            ConstantTime.equals(chain.headMAC(sequence: stored.sequence, mac: stored.mac), stored.headMAC)
        else { return false }
        return true
    }

    /// Appends inside a caller's transaction, so an action and its audit record commit together.
    /// - Throws: ``AuditLogError`` if the log has no head: a chain starts only with its genesis
    ///   record, when the key ring is created.
    @discardableResult
    public func append(_ events: [AuditEvent], in db: Database) throws -> [Int64] {
        try Self.append(events, in: db, keys: keys, headFile: headFile)
    }

    private enum Start {
        /// Appends to the current segment.
        case continuing
        /// The first records of the log.
        case genesis
        /// The first record of root version N's segment, MAC'd under its chain.
        case segment(UInt32, AuditChain)
    }

    private static func append(
        _ events: [AuditEvent], in db: Database, keys: AuditKeys, headFile: AuditHeadFileWriter?,
        start: Start = .continuing
    ) throws -> [Int64] {
        guard !events.isEmpty else { return [] }
        let stored = try head(db)
        var events = events
        var chain: AuditChain?
        let version: UInt32
        switch (start, stored) {
        case (.genesis, _):
            version = 0
        case (_, nil):
            // A missing head means the log was wiped or its head deleted: starting a fresh chain
            // here would hide that.
            throw AuditLogError("the audit log has no head (audit_head); refusing to start a new chain")
        case (.continuing, let stored?):
            // The vault's newest root version, not the head's unauthenticated `key_version`:
            // an edited column must not make appends fall back to an older (perhaps leaked) key.
            version = try keys.newestVersion?(db) ?? stored.version
        case (.segment(let next, let nextChain), let stored?):
            guard next >= 1, let closing = try keys.chain(db, next - 1) else {
                throw AuditLogError("root key version \(next) has no previous version to close the audit log's segment")
            }
            version = next
            chain = nextChain
            events[0].detail = closing.segmentDetail(version: next, sequence: stored.sequence, mac: stored.mac)
        }
        if case .segment = start {
        } else if events.contains(where: { $0.type == AuditChain.segmentStartType }) {
            throw AuditLogError("only a root-key rotation writes a \(AuditChain.segmentStartType) record")
        }
        guard let chain = try chain ?? keys.chain(db, version) else {
            throw AuditLogError(
                "the audit log's segment is under root key version \(version), which this vault cannot open")
        }
        let vaultWritten: Int? =
            switch start {
            case .continuing: nil
            case .genesis, .segment: 0
            }
        var (sequence, previous) = stored.map { ($0.sequence, $0.mac) } ?? (0, AuditChain.genesis)
        var sequences = [Int64]()
        sequences.reserveCapacity(events.count)
        let insert = try db.cachedStatement(
            sql: """
                INSERT INTO audit_log (sequence, time_ms, actor, type, outcome, origin, objects, purpose, reference,
                    detail, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
        for (index, event) in events.enumerated() {
            // A genesis or segment commitment is hex the vault computed: its digit runs are no card
            // number, and redacting one would make the record fail its check for ever.
            let event = index == vaultWritten ? event : event.redactingCardNumbers()
            sequence += 1
            let mac = chain.mac(sequence: sequence, event: event, previous: previous)
            try insert.execute(arguments: [
                sequence, AuditChain.milliseconds(event.time), event.actor, event.type, event.outcome.rawValue,
                event.origin, encodeObjects(event.objects), event.purpose, event.reference, event.detail, Data(mac),
            ])
            previous = mac
            sequences.append(sequence)
        }
        let head = AuditHead(
            sequence: sequence, mac: previous, headMAC: chain.headMAC(sequence: sequence, mac: previous))
        let hasVersionColumn =
            try stored?.hasVersionColumn ?? db.columns(in: "audit_head").contains { $0.name == "key_version" }
        if hasVersionColumn {
            try db.execute(
                sql: "INSERT INTO audit_head (id, sequence, mac, head_mac, key_version) VALUES (1, ?, ?, ?, ?) "
                    + "ON CONFLICT(id) DO UPDATE SET sequence = excluded.sequence, mac = excluded.mac, "
                    + "head_mac = excluded.head_mac, key_version = excluded.key_version",
                arguments: [sequence, Data(previous), Data(head.headMAC), version])
        } else {
            // Before migration `vault.root-versions`: one root version only.
            guard version == 0 else { throw AuditLogError("the audit head cannot record root key versions yet") }
            try db.execute(
                sql: "INSERT INTO audit_head (id, sequence, mac, head_mac) VALUES (1, ?, ?, ?) "
                    + "ON CONFLICT(id) DO UPDATE SET sequence = excluded.sequence, mac = excluded.mac, "
                    + "head_mac = excluded.head_mac",
                arguments: [sequence, Data(previous), Data(head.headMAC)])
        }
        if let headFile {
            // After the commit, in commit order (the writer is serial): the file never runs ahead
            // of the database. If it cannot be written the records stay committed, and verify
            // reports the file as behind.
            db.afterNextTransaction(onCommit: { _ in headFile.committed(head) })
        }
        return sequences
    }

    /// A page of records in sequence order.
    /// - Parameters:
    ///   - since: only records at or after this time.
    ///   - actor: only records of this actor.
    ///   - token: only records whose objects include this token (or object name).
    ///   - after: only records with a sequence above this (the cursor of the previous page).
    ///   - limit: at most this many records.
    public func records(
        since: Date? = nil, actor: String? = nil, token: String? = nil, after: Int64 = 0, limit: Int = 1000
    ) async throws -> [AuditRecord] {
        try writer.readInPlace { db in
            var sql = "SELECT * FROM audit_log WHERE sequence > ?"
            var arguments: StatementArguments = [after]
            if let since {
                sql += " AND time_ms >= ?"
                arguments += [AuditChain.milliseconds(since)]
            }
            if let actor {
                sql += " AND actor = ?"
                arguments += [actor]
            }
            if let token {
                sql += " AND EXISTS (SELECT 1 FROM json_each(audit_log.objects) WHERE json_each.value = ?)"
                arguments += [token]
            }
            sql += " ORDER BY sequence LIMIT ?"
            arguments += [limit]
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map(Self.record)
        }
    }

    /// The result of checking the chain.
    public struct Verification: Sendable, Hashable {
        public var ok: Bool
        public var records: Int64
        public var firstBadRecord: Int64?
        public var reason: String?
    }

    /// Recomputes every MAC and compares the tail with `audit_head` and the head file.
    public func verify() async throws -> Verification {
        // The head file is read before the database snapshot is taken: it is written after each
        // commit, so read in this order it can only lag the snapshot. Read after it, appends
        // committed meanwhile (another process, or this one) would look like a cut tail.
        let headFile = try headFilePath.map { path in (path: path, head: try AuditHead.read(path: path)) }
        return try writer.readInPlace { [genesisRule, keys] db in
            let rule = try genesisRule?(db)
            var previous = AuditChain.genesis
            var expected: Int64 = 0
            // The segments met so far: (first sequence, root version, chain); the log starts under
            // root version 0, and each `keys.rotate_root` record opens the next version's segment.
            guard let first = try keys.chain(db, 0) else { throw AuditLogError("no audit key for root key version 0") }
            var segments: [(start: Int64, version: UInt32, chain: AuditChain)] = [(1, 0, first)]
            let cursor = try Row.fetchCursor(db, sql: "SELECT * FROM audit_log ORDER BY sequence")
            while let row = try cursor.next() {
                expected += 1
                guard let record = Self.record(row, strict: true) else {
                    return Verification(
                        ok: false, records: expected - 1, firstBadRecord: row["sequence"],
                        reason: "record altered: a field holds a value the log never writes")
                }
                guard record.sequence == expected else {
                    return Verification(
                        ok: false, records: expected - 1, firstBadRecord: min(record.sequence, expected),
                        reason: "sequence gap: expected \(expected), found \(record.sequence)")
                }
                var chain = segments[segments.count - 1].chain
                if record.event.type == AuditChain.segmentStartType {
                    // A new segment: MAC'd under the next root version, and closed by the old
                    // version's key over the record before it.
                    let current = segments[segments.count - 1]
                    guard let version = AuditChain.segmentVersion(detail: record.event.detail),
                        version == current.version + 1, let next = try keys.chain(db, version),
                        record.event.detail
                            == current.chain.segmentDetail(version: version, sequence: expected - 1, mac: previous)
                    else {
                        return Verification(
                            ok: false, records: expected - 1, firstBadRecord: record.sequence,
                            reason:
                                "a root-key rotation record that does not close its segment: record altered or forged")
                    }
                    chain = next
                    segments.append((record.sequence, version, next))
                }
                let mac = chain.mac(sequence: record.sequence, event: record.event, previous: previous)
                guard ConstantTime.equals(mac, record.mac) else {
                    return Verification(
                        ok: false, records: expected - 1, firstBadRecord: record.sequence,
                        reason: "MAC mismatch: record altered, inserted or reordered")
                }
                if record.sequence == 1, case .bound(let keyRingCreatedAtMs) = rule,
                    record.event.detail != chain.genesisDetail(keyRingCreatedAtMs: keyRingCreatedAtMs)
                {
                    return Verification(
                        ok: false, records: 0, firstBadRecord: 1,
                        reason: "the first record is not the genesis record of this vault's key ring")
                }
                previous = mac
            }
            let last = segments[segments.count - 1]
            // A log cut back to an older segment (by someone holding an old root key) would
            // otherwise verify under that key.
            if let newest = try keys.newestVersion?(db), expected > 0, newest != last.version {
                return Verification(
                    ok: false, records: expected, firstBadRecord: expected + 1,
                    reason:
                        "the log's last segment is under root key v\(last.version) but the vault's newest root key is v\(newest): records cut"
                )
            }
            // The head in the database must seal exactly the last record, under the last segment's key.
            let stored = try Self.storedHead(db)
            let storedVersion = (try? Self.head(db))?.version
            let sealed = stored.map {
                storedVersion == last.version
                    && ConstantTime.equals(last.chain.headMAC(sequence: $0.sequence, mac: $0.mac), $0.headMAC)
            }
            guard (stored == nil && expected == 0) || sealed == true else {
                return Verification(
                    ok: false, records: expected, firstBadRecord: expected + 1,
                    reason: "the log's head in the database is missing or not sealed by the audit key")
            }
            guard stored == nil || (stored!.sequence == expected && ConstantTime.equals(stored!.mac, previous)) else {
                return Verification(
                    ok: false, records: expected, firstBadRecord: expected + 1,
                    reason: "log ends at \(expected) but its head says \(stored!.sequence): records cut or head altered"
                )
            }
            // The head file may lag one commit behind (written after it), never run ahead.
            if let (headFilePath, head) = headFile {
                switch head {
                case .none where expected > 0:
                    return Verification(
                        ok: false, records: expected, firstBadRecord: expected + 1,
                        reason: "the head file \(headFilePath) is missing")
                case .some(.none):
                    return Verification(
                        ok: false, records: expected, firstBadRecord: expected + 1,
                        reason: "the head file \(headFilePath) is malformed")
                case .some(.some(let file)):
                    // Sealed under the key of the segment its record belongs to.
                    let chain = segments.last { $0.start <= max(file.sequence, 1) }!.chain
                    guard ConstantTime.equals(chain.headMAC(sequence: file.sequence, mac: file.mac), file.headMAC)
                    else {
                        return Verification(
                            ok: false, records: expected, firstBadRecord: expected + 1,
                            reason: "the head file \(headFilePath) is not sealed by the audit key")
                    }
                    guard file.sequence <= expected else {
                        return Verification(
                            ok: false, records: expected, firstBadRecord: expected + 1,
                            reason:
                                "the head file records \(file.sequence) records but the log has \(expected): records cut"
                        )
                    }
                    if file.sequence > 0 {
                        let mac = try Data.fetchOne(
                            db, sql: "SELECT mac FROM audit_log WHERE sequence = ?", arguments: [file.sequence])
                        guard let mac, ConstantTime.equals([UInt8](mac), file.mac) else {
                            return Verification(
                                ok: false, records: expected, firstBadRecord: file.sequence,
                                reason: "record \(file.sequence) differs from the one the head file sealed")
                        }
                    }
                default:
                    break
                }
            }
            // Checked last, so that a head that still names the deleted records is reported as such.
            if expected == 0, rule != nil {
                return Verification(
                    ok: false, records: 0, firstBadRecord: 1,
                    reason: "the log is empty but the vault has a key ring: its genesis record and head are gone")
            }
            return Verification(ok: true, records: expected, firstBadRecord: nil, reason: nil)
        }
    }

    private static func storedHead(_ db: Database) throws -> AuditHead? {
        // A value of the wrong type reads as empty, and then fails its seal, rather than stopping the process.
        try Row.fetchOne(db, sql: "SELECT sequence, mac, head_mac FROM audit_head WHERE id = 1").map { row in
            AuditHead(
                sequence: Int64.fromDatabaseValue(row["sequence"] as DatabaseValue) ?? -1,
                mac: Data.fromDatabaseValue(row["mac"] as DatabaseValue).map { [UInt8]($0) } ?? [],
                headMAC: Data.fromDatabaseValue(row["head_mac"] as DatabaseValue).map { [UInt8]($0) } ?? [])
        }
    }

    /// The head as the appender needs it: where the chain stands and under which root version.
    private struct StoredHead {
        var sequence: Int64
        var mac: [UInt8]
        var version: UInt32
        /// Whether `audit_head` has the `key_version` column (migration `vault.root-versions`).
        var hasVersionColumn: Bool
    }

    private static func head(_ db: Database) throws -> StoredHead? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM audit_head WHERE id = 1") else { return nil }
        // Decoded without trusting the row: a value of the wrong type is an error, never a crash.
        let hasVersion = row.hasColumn("key_version")
        guard let mac = Data.fromDatabaseValue(row["mac"] as DatabaseValue),
            let sequence = Int64.fromDatabaseValue(row["sequence"] as DatabaseValue),
            let version = hasVersion
                ? Int64.fromDatabaseValue(row["key_version"] as DatabaseValue).flatMap(UInt32.init(exactly:)) : 0
        else {
            throw AuditLogError("the audit head (audit_head) holds values the log never writes")
        }
        return StoredHead(sequence: sequence, mac: [UInt8](mac), version: version, hasVersionColumn: hasVersion)
    }

    private static func record(_ row: Row) -> AuditRecord {
        record(row, strict: false)!
    }

    /// Decodes a row. With `strict`, a value the log never writes (an unknown outcome, objects
    /// that are not a JSON array of strings) makes it `nil` instead of a best-effort record, so
    /// verification judges exactly what is stored.
    private static func record(_ row: Row, strict: Bool) -> AuditRecord? {
        let mac: Data = row["mac"]
        let timeMilliseconds: Int64 = row["time_ms"]
        let outcome = AuditEvent.Outcome(rawValue: row["outcome"])
        let objectsText: String = row["objects"]
        let objects = decodeObjects(objectsText)
        if strict,
            outcome == nil || objects == nil || encodeObjects(objects ?? []) != objectsText || !hasWrittenTypes(row)
        {
            return nil
        }
        let event = AuditEvent(
            actor: row["actor"], type: row["type"],
            time: Date(milliseconds: timeMilliseconds),
            outcome: outcome ?? .failure, origin: row["origin"],
            objects: objects ?? [], purpose: row["purpose"], reference: row["reference"],
            detail: row["detail"])
        return AuditRecord(sequence: row["sequence"], event: event, mac: [UInt8](mac))
    }

    /// Whether every column holds the storage class the log writes. SQLite converts between
    /// classes on reading (a blob reads as the text of its bytes, `'123x'` as the integer 123), so
    /// without this a changed row could decode exactly like the one that was MAC'd.
    private static func hasWrittenTypes(_ row: Row) -> Bool {
        func storage(_ column: String) -> DatabaseValue.Storage { (row[column] as DatabaseValue).storage }
        func isText(_ column: String, orNull: Bool = false) -> Bool {
            switch storage(column) {
            case .string: true
            case .null: orNull
            default: false
            }
        }
        guard case .int64 = storage("time_ms"), case .blob = storage("mac") else { return false }
        return ["actor", "type", "outcome", "origin", "objects"].allSatisfy { isText($0) }
            && ["purpose", "reference", "detail"].allSatisfy { isText($0, orNull: true) }
    }

    /// Objects are stored as a JSON array of strings.
    /// A JSON array of strings, written by hand: it runs once per audit record on the detokenize
    /// path, where `JSONEncoder` cost more than the insert. Escapes `"`, `\\` and control
    /// characters (as `\\u00XX`); verification re-encodes with this same function.
    static func encodeObjects(_ objects: [String]) -> String {
        var output = "["
        for (index, object) in objects.enumerated() {
            if index > 0 { output += "," }
            output += "\""
            for scalar in object.unicodeScalars {
                switch scalar {
                case "\"": output += "\\\""
                case "\\": output += "\\\\"
                case _ where scalar.value < 0x20:
                    output += "\\u00" + String(scalar.value, radix: 16).leftPadded(to: 2)
                default: output.unicodeScalars.append(scalar)
                }
            }
            output += "\""
        }
        return output + "]"
    }

    private static func decodeObjects(_ text: String) -> [String]? {
        try? JSONDecoder().decode([String].self, from: Data(text.utf8))
    }
}

/// What the first record of the log must be, once the vault has a key ring (docs/CRYPTO.md §11).
public enum AuditGenesisRule: Sendable, Hashable {
    /// Record 1 must be the genesis record bound to the key ring created at this time.
    case bound(keyRingCreatedAtMs: Int64)
    /// The log predates genesis records (the vault was created before them, and marked so when
    /// it was upgraded): record 1 needs no genesis detail. The log may still not be empty.
    case legacy
}

/// The audit log refused a write that would break its chain.
public struct AuditLogError: Error, Sendable, Hashable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
