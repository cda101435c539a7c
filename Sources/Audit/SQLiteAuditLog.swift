public import Foundation
public import GRDB
import VaultCrypto

/// The audit log in the vault's SQLite database (`audit_log` and `audit_head` tables).
///
/// `audit_head` keeps the last sequence number and MAC apart from the records, so a cut tail
/// (the newest records deleted) is detected too.
public struct SQLiteAuditLog: AuditLog {
    private let writer: any DatabaseWriter
    private let chain: AuditChain

    public init(writer: any DatabaseWriter, chain: AuditChain) {
        self.writer = writer
        self.chain = chain
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
                    CREATE TABLE audit_head (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        sequence INTEGER NOT NULL,
                        mac BLOB NOT NULL
                    );
                    """)
        }
    }

    public func append(_ events: [AuditEvent]) async throws {
        guard !events.isEmpty else { return }
        try await writer.write { db in try self.append(events, in: db) }
    }

    /// Appends inside a caller's transaction, so an action and its audit record commit together.
    public func append(_ events: [AuditEvent], in db: Database) throws {
        var (sequence, previous) = try Self.head(db)
        for event in events {
            sequence += 1
            let mac = chain.mac(sequence: sequence, event: event, previous: previous)
            try db.execute(
                sql: """
                    INSERT INTO audit_log (sequence, time_ms, actor, type, outcome, origin, objects, purpose, reference,
                        detail, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    sequence, AuditChain.milliseconds(event.time), event.actor, event.type, event.outcome.rawValue,
                    event.origin, Self.encodeObjects(event.objects), event.purpose, event.reference, event.detail,
                    Data(mac),
                ])
            previous = mac
        }
        try db.execute(
            sql: "INSERT INTO audit_head (id, sequence, mac) VALUES (1, ?, ?) "
                + "ON CONFLICT(id) DO UPDATE SET sequence = excluded.sequence, mac = excluded.mac",
            arguments: [sequence, Data(previous)])
    }

    /// Records in sequence order, optionally filtered.
    public func records(since: Date? = nil, actor: String? = nil, limit: Int = 1000) async throws -> [AuditRecord] {
        try await writer.read { db in
            var sql = "SELECT * FROM audit_log WHERE 1 = 1"
            var arguments = StatementArguments()
            if let since {
                sql += " AND time_ms >= ?"
                arguments += [AuditChain.milliseconds(since)]
            }
            if let actor {
                sql += " AND actor = ?"
                arguments += [actor]
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

    /// Recomputes every MAC and compares the tail with `audit_head`.
    public func verify() async throws -> Verification {
        try await writer.read { db in
            var previous = AuditChain.genesis
            var expected: Int64 = 0
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
                let mac = chain.mac(sequence: record.sequence, event: record.event, previous: previous)
                guard ConstantTime.equals(mac, record.mac) else {
                    return Verification(
                        ok: false, records: expected - 1, firstBadRecord: record.sequence,
                        reason: "MAC mismatch: record altered, inserted or reordered")
                }
                previous = mac
            }
            let (headSequence, headMAC) = try Self.head(db)
            guard headSequence == expected, ConstantTime.equals(headMAC, previous) else {
                return Verification(
                    ok: false, records: expected, firstBadRecord: expected + 1,
                    reason: "log ends at \(expected) but its head says \(headSequence): records cut or head altered")
            }
            return Verification(ok: true, records: expected, firstBadRecord: nil, reason: nil)
        }
    }

    private static func head(_ db: Database) throws -> (Int64, [UInt8]) {
        guard let row = try Row.fetchOne(db, sql: "SELECT sequence, mac FROM audit_head WHERE id = 1") else {
            return (0, AuditChain.genesis)
        }
        let mac: Data = row["mac"]
        return (row["sequence"], [UInt8](mac))
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
        if strict, outcome == nil || objects == nil || encodeObjects(objects ?? []) != objectsText { return nil }
        let event = AuditEvent(
            actor: row["actor"], type: row["type"],
            time: Date(timeIntervalSince1970: Double(timeMilliseconds) / 1000),
            outcome: outcome ?? .failure, origin: row["origin"],
            objects: objects ?? [], purpose: row["purpose"], reference: row["reference"],
            detail: row["detail"])
        return AuditRecord(sequence: row["sequence"], event: event, mac: [UInt8](mac))
    }

    /// Objects are stored as a JSON array of strings.
    private static func encodeObjects(_ objects: [String]) -> String {
        let data = (try? JSONEncoder().encode(objects)) ?? Data("[]".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    private static func decodeObjects(_ text: String) -> [String]? {
        try? JSONDecoder().decode([String].self, from: Data(text.utf8))
    }
}
