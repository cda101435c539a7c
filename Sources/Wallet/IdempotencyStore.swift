import Foundation
import GRDB
import SQLiteSupport
import Synchronization

/// What an idempotent request produced, as stored: the value, or the refusal that ended it.
enum StoredOutcome<Value: Codable>: Codable {
    case success(Value)
    case failure(WalletError)
}

/// The first outcome of each `Idempotency-Key`, in `wallet.db`.
///
/// Rules (Stripe's): a retry with the same key and request gets the stored outcome; the same key
/// with another request is `idempotency_key_reused`; a request still running under the key is
/// `idempotency_key_in_use`. Outcomes are stored only once a request has run: a request refused
/// while validating, or one that ended in a retryable acquirer error, stores nothing, so it may
/// be sent again under the same key. An outcome is written in the same transaction as the
/// change it describes, so a crash leaves either both or neither.
///
/// Keys in flight are tracked in memory: one process owns `wallet.db` (SQLite), so that is
/// where concurrent duplicates meet.
final class IdempotencyStore: Sendable {
    private let pool: DatabasePool
    private let inFlight = Mutex<Set<IdempotencyKey>>([])
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }()
    private static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }()

    /// Thrown (inside a transaction) when the key already has an outcome: the transaction rolls
    /// back and the stored outcome is replayed instead.
    struct AlreadyRecorded: Error {}

    /// Thrown by an operation whose failure it has already stored.
    struct RecordedFailure: Error {
        var error: WalletError
    }

    init(pool: DatabasePool) {
        self.pool = pool
    }

    static func migrate(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("wallet.idempotency.v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE wallet_idempotency (
                        owner TEXT NOT NULL,
                        key TEXT NOT NULL,
                        request TEXT NOT NULL,
                        outcome BLOB NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (owner, key)
                    ) WITHOUT ROWID
                    """)
        }
        // Outcomes are a few hundred bytes: as a rowid table they append, and only the small
        // (owner, key) index takes the clients' keys in random order (a WITHOUT ROWID table
        // split its large rows across far more pages per commit).
        migrator.registerMigration("wallet.idempotency.v2") { db in
            try db.execute(
                sql: """
                    CREATE TABLE wallet_idempotency_v2 (
                        owner TEXT NOT NULL,
                        key TEXT NOT NULL,
                        request TEXT NOT NULL,
                        outcome BLOB NOT NULL,
                        created_at_ms INTEGER NOT NULL
                    );
                    INSERT INTO wallet_idempotency_v2 (owner, key, request, outcome, created_at_ms)
                        SELECT owner, key, request, outcome, created_at_ms FROM wallet_idempotency ORDER BY created_at_ms;
                    DROP TABLE wallet_idempotency;
                    ALTER TABLE wallet_idempotency_v2 RENAME TO wallet_idempotency;
                    CREATE UNIQUE INDEX wallet_idempotency_key ON wallet_idempotency(owner, key);
                    """)
        }
    }

    /// A handle an operation uses to store its outcome inside its own transaction.
    struct Recorder<Value: Codable & Sendable>: Sendable {
        let key: IdempotencyKey
        let request: String
        let now: Date

        func save(_ db: Database, _ outcome: StoredOutcome<Value>) throws {
            try save(db, encoded: encode(outcome))
        }

        /// The stored form of `outcome`: encode before a commit to keep the encoding out of the
        /// single writer's time.
        func encode(_ outcome: StoredOutcome<Value>) throws -> Data {
            try IdempotencyStore.encoder.encode(outcome)
        }

        func save(_ db: Database, encoded data: Data) throws {
            do {
                try db.cachedStatement(
                    sql: """
                        INSERT INTO wallet_idempotency (owner, key, request, outcome, created_at_ms)
                        VALUES (?, ?, ?, ?, ?)
                        """
                ).execute(arguments: [key.owner, key.key, request, data, now.milliseconds])
            } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                throw AlreadyRecorded()
            }
        }
    }

    /// Runs `operation` at most once per key (see the type's rules) and returns its outcome, or
    /// the stored outcome of an earlier run.
    func run<Value: Codable & Sendable>(
        _ key: IdempotencyKey, request: String, now: Date,
        _ operation: (Recorder<Value>) async throws -> Value
    ) async throws -> Value {
        let claimed = inFlight.withLock { $0.insert(key).inserted }
        guard claimed else {
            throw WalletError(.idempotencyKeyInUse, "a request with this Idempotency-Key is still in progress")
        }
        defer { _ = inFlight.withLock { $0.remove(key) } }
        let recorder = Recorder<Value>(key: key, request: request, now: now)
        do {
            return try await operation(recorder)
        } catch is AlreadyRecorded {
            return try await replay(key, request: request, as: Value.self)
        } catch let failure as RecordedFailure {
            throw failure.error
        } catch let error as WalletError {
            // Refused before it ran: an earlier run's outcome, if any, takes precedence.
            if let value = try await storedOutcome(key, request: request, as: Value.self) {
                return try value.get()
            }
            throw error
        }
    }

    /// Stores a failure on its own, for operations whose failure changed nothing else.
    func saveFailure<Value: Codable & Sendable>(
        _ error: WalletError, with recorder: Recorder<Value>
    ) async throws
        -> Never
    {
        try await pool.write { db in try recorder.save(db, .failure(error)) }
        throw RecordedFailure(error: error)
    }

    /// The stored outcome of `key`, if any.
    /// - Throws: `idempotency_key_reused` when the key was used for another request.
    func storedOutcome<Value: Codable>(
        _ key: IdempotencyKey, request: String, as type: Value.Type
    ) async throws -> Result<Value, WalletError>? {
        let stored = try await pool.read { db -> (request: String, outcome: Data)? in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT request, outcome FROM wallet_idempotency WHERE owner = ? AND key = ?"),
                arguments: [key.owner, key.key]
            ).map { ($0["request"], $0["outcome"]) }
        }
        guard let stored else { return nil }
        guard stored.request == request else {
            throw WalletError(
                .idempotencyKeyReused, "this Idempotency-Key was already used with a different request")
        }
        switch try Self.decoder.decode(StoredOutcome<Value>.self, from: stored.outcome) {
        case .success(let value): return .success(value)
        case .failure(let error): return .failure(error)
        }
    }

    /// Deletes the outcomes stored before `cutoff`, oldest first, in transactions of at most
    /// `batchSize` rows (so requests wait for at most one short write); returns how many.
    ///
    /// Rows are in insertion order (rowid), which is time order to within a commit's latency, so
    /// each pass reads from the oldest row and stops at the first newer than `cutoff`: the cost is
    /// the rows deleted, not the table. A row a little out of order goes in a later purge.
    func purge(before cutoff: Date, batchSize: Int = 1000) async throws -> Int {
        precondition(batchSize > 0)
        var total = 0
        while true {
            let pass = try await pool.write { db -> (deleted: Int, more: Bool) in
                let oldest = try Row.fetchAll(
                    db, sql: "SELECT rowid, created_at_ms FROM wallet_idempotency ORDER BY rowid LIMIT ?",
                    arguments: [batchSize])
                let expired = oldest.prefix { ($0[1] as Int64) < cutoff.milliseconds }
                guard let last = expired.last else { return (0, false) }
                try db.execute(sql: "DELETE FROM wallet_idempotency WHERE rowid <= ?", arguments: [last[0] as Int64])
                // More may follow only if the whole batch was expired.
                return (db.changesCount, expired.count == batchSize)
            }
            total += pass.deleted
            if !pass.more { return total }
        }
    }

    private func replay<Value: Codable>(
        _ key: IdempotencyKey, request: String, as type: Value.Type
    ) async throws
        -> Value
    {
        guard let outcome = try await storedOutcome(key, request: request, as: type) else {
            throw WalletError(.internalFailure, "the stored outcome of an Idempotency-Key vanished")
        }
        return try outcome.get()
    }
}
