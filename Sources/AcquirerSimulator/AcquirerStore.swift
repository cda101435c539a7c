public import Foundation
import GRDB
import SQLiteSupport

/// One authorization as the simulator answered and recorded it. Holds no card data beyond BIN
/// and last four (never the PAN or the CVV; only whether a CVV was sent).
public struct AuthorizationRecord: Sendable, Hashable {
    /// The caller's reference (unique per charge).
    public var reference: String
    public var amount: Int64
    public var currency: String
    /// The first six digits of the PAN.
    public var bin: String
    /// The last four digits of the PAN.
    public var last4: String
    /// Whether the card block carried a CVV.
    public var cvvPresent: Bool
    public var status: AcquirerDecision.Status
    /// Six digits (approved only).
    public var authCode: String?
    /// The simulator's id of this authorization, `acq_` and 24 hex digits.
    public var acquirerReference: String
    /// Why it was declined (declined only).
    public var declineCode: AcquirerDecision.DeclineCode?
    /// When it was recorded (whole milliseconds).
    public var createdAt: Date

    public init(
        reference: String, amount: Int64, currency: String, bin: String, last4: String, cvvPresent: Bool,
        status: AcquirerDecision.Status, authCode: String?, acquirerReference: String,
        declineCode: AcquirerDecision.DeclineCode?, createdAt: Date
    ) {
        self.reference = reference
        self.amount = amount
        self.currency = currency
        self.bin = bin
        self.last4 = last4
        self.cvvPresent = cvvPresent
        self.status = status
        self.authCode = authCode
        self.acquirerReference = acquirerReference
        self.declineCode = declineCode
        self.createdAt = createdAt
    }
}

/// The simulator's records: `acquirer.db` (SQLite through GRDB, WAL) in the state folder.
final class AcquirerStore: Sendable {
    static let fileName = "acquirer.db"

    let path: String
    private let pool: DatabasePool

    private init(pool: DatabasePool, path: String) {
        self.pool = pool
        self.path = path
    }

    /// Opens (and creates, with its folder, if missing) `acquirer.db` in `directory`.
    static func open(directory: String) throws -> AcquirerStore {
        let path = AcquirerKeyPair.path(directory, fileName)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        configuration.label = "acquirer"
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")
        }
        // Owner-only (folder 0700; the file, its -wal and -shm 0600) before SQLite opens it, and
        // `synchronous = FULL` on the writer.
        let pool = try DatabaseFile.openDurablePool(
            directory: directory, fileName: fileName, configuration: configuration)
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE authorizations (
                        reference TEXT PRIMARY KEY NOT NULL,
                        amount INTEGER NOT NULL,
                        currency TEXT NOT NULL,
                        bin TEXT NOT NULL,
                        last4 TEXT NOT NULL,
                        cvv_present INTEGER NOT NULL,
                        status TEXT NOT NULL,
                        auth_code TEXT,
                        acquirer_reference TEXT NOT NULL UNIQUE,
                        decline_code TEXT,
                        created_at_ms INTEGER NOT NULL
                    )
                    """)
        }
        try migrator.migrate(pool)
        return AcquirerStore(pool: pool, path: path)
    }

    /// The record of `reference`, or `nil`.
    func record(reference: String) async throws -> AuthorizationRecord? {
        try pool.readInPlace { db in
            try Row.fetchOne(db, sql: "SELECT * FROM authorizations WHERE reference = ?", arguments: [reference])
                .map(Self.record)
        }
    }

    /// Every record, oldest first.
    func records() async throws -> [AuthorizationRecord] {
        try pool.readInPlace { db in
            try Row.fetchAll(db, sql: "SELECT * FROM authorizations ORDER BY created_at_ms, rowid").map(Self.record)
        }
    }

    /// Inserts `record` unless its reference is known; returns the record now stored under the
    /// reference (the new one, or the earlier one that won).
    func insert(_ record: AuthorizationRecord) async throws -> AuthorizationRecord {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO authorizations (reference, amount, currency, bin, last4, cvv_present, status,
                        auth_code, acquirer_reference, decline_code, created_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(reference) DO NOTHING
                    """,
                arguments: [
                    record.reference, record.amount, record.currency, record.bin, record.last4, record.cvvPresent,
                    record.status.rawValue, record.authCode, record.acquirerReference, record.declineCode?.rawValue,
                    Int64((record.createdAt.timeIntervalSince1970 * 1000).rounded()),
                ])
            guard db.changesCount == 0 else { return record }
            guard
                let stored = try Row.fetchOne(
                    db, sql: "SELECT * FROM authorizations WHERE reference = ?", arguments: [record.reference])
            else { return record }
            return Self.record(stored)
        }
    }

    private static func record(_ row: Row) -> AuthorizationRecord {
        let declineCode: String? = row["decline_code"]
        let milliseconds: Int64 = row["created_at_ms"]
        return AuthorizationRecord(
            reference: row["reference"], amount: row["amount"], currency: row["currency"], bin: row["bin"],
            last4: row["last4"], cvvPresent: row["cvv_present"],
            status: AcquirerDecision.Status(rawValue: row["status"]) ?? .declined, authCode: row["auth_code"],
            acquirerReference: row["acquirer_reference"],
            declineCode: declineCode.flatMap(AcquirerDecision.DeclineCode.init(rawValue:)),
            createdAt: Date(milliseconds: milliseconds))
    }
}
