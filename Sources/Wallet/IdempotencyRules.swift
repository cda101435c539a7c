package import Foundation
import Synchronization

/// What an idempotent request produced, as stored: the value, or the refusal that ended it.
package enum StoredOutcome<Value: Codable>: Codable {
    case success(Value)
    case failure(WalletError)
}

/// The rules of `Idempotency-Key`s over the outcomes a ``WalletStore`` keeps.
///
/// Rules (Stripe's): a retry with the same key and request gets the stored outcome; the same key
/// with another request is `idempotency_key_reused`; a request still running under the key is
/// `idempotency_key_in_use`. Outcomes are stored only once a request has run: a request refused
/// while validating, or one that ended in a retryable acquirer error, stores nothing, so it may
/// be sent again under the same key. An outcome is written in the same commit as the change it
/// describes (a ``WalletWrite``), so a crash leaves either both or neither.
///
/// Keys in flight are tracked in memory: one process owns `wallet.db` (SQLite), so that is
/// where concurrent duplicates meet.
package final class IdempotencyRules: Sendable {
    private let store: any WalletStore
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

    /// Thrown by an operation whose failure it has already stored.
    package struct RecordedFailure: Error {
        package var error: WalletError
    }

    init(store: any WalletStore) {
        self.store = store
    }

    /// A handle an operation uses to store its outcome in its own commit.
    package struct Recorder<Value: Codable & Sendable>: Sendable {
        let key: IdempotencyKey
        let request: String
        let now: Date

        /// The write that stores `outcome`.
        package func write(_ outcome: StoredOutcome<Value>) throws -> WalletWrite {
            try write(encoded: encode(outcome))
        }

        /// The stored form of `outcome`: encode before a commit to keep the encoding out of the
        /// single writer's time.
        package func encode(_ outcome: StoredOutcome<Value>) throws -> Data {
            try IdempotencyRules.encoder.encode(outcome)
        }

        package func write(encoded data: Data) -> WalletWrite {
            .outcome(StoredIdempotencyOutcome(request: request, outcome: data, createdAt: now), key: key)
        }
    }

    /// Runs `operation` at most once per key (see the type's rules) and returns its outcome, or
    /// the stored outcome of an earlier run.
    package func run<Value: Codable & Sendable>(
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
        } catch is OutcomeAlreadyStored {
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

    /// Runs `body` holding `key` as a request in progress would, so that a client's retry with
    /// the same key waits its turn (409 `idempotency_key_in_use`); `nil` without running it if a
    /// request holds the key now.
    package func whileHolding<R>(_ key: IdempotencyKey, _ body: () async throws -> R) async rethrows -> R? {
        guard inFlight.withLock({ $0.insert(key).inserted }) else { return nil }
        defer { _ = inFlight.withLock { $0.remove(key) } }
        return try await body()
    }

    /// Stores a failure on its own, for operations whose failure changed nothing else.
    package func saveFailure<Value: Codable & Sendable>(
        _ error: WalletError, with recorder: Recorder<Value>
    ) async throws
        -> Never
    {
        try await store.write([recorder.write(.failure(error))])
        throw RecordedFailure(error: error)
    }

    /// The stored outcome of `key`, if any.
    /// - Throws: `idempotency_key_reused` when the key was used for another request.
    package func storedOutcome<Value: Codable>(
        _ key: IdempotencyKey, request: String, as type: Value.Type
    ) async throws -> Result<Value, WalletError>? {
        try decode(try await store.outcome(of: key), request: request, as: type)
    }

    /// `stored` (read by the caller) as the outcome of `request`.
    /// - Throws: `idempotency_key_reused` when it was stored for another request.
    func decode<Value: Codable>(
        _ stored: StoredIdempotencyOutcome?, request: String, as type: Value.Type
    ) throws -> Result<Value, WalletError>? {
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

    /// Deletes the outcomes stored before `cutoff`; returns how many.
    func purge(before cutoff: Date, batchSize: Int = 1000) async throws -> Int {
        try await store.purgeOutcomes(before: cutoff, batchSize: batchSize)
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
