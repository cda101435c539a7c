public import Audit
import Synchronization

// Audit logs that misbehave or watch, for the suites of the code that must audit before it acts.

/// An audit log that cannot be written (a full disk, a lost database); counts the attempts.
public final class FailingAuditLog: AuditLog {
    public struct WriteFailed: Error {}

    private let attemptCount = Atomic<Int>(0)

    public init() {}

    /// How many appends were attempted.
    public var attempts: Int { attemptCount.load(ordering: .relaxed) }

    public func append(_ events: [AuditEvent]) async throws -> [Int64] {
        attemptCount.add(1, ordering: .relaxed)
        throw WriteFailed()
    }
}

/// Passes appends to `base` and keeps a copy of every event, with a note taken once its append
/// has committed: what the rest of the system had done by then (the results returned, the
/// acquirer asked).
public final class SpyAuditLog<Note: Sendable>: AuditLog {
    public let base: any AuditLog
    private let note: @Sendable () async throws -> Note
    private let state = Mutex<[(event: AuditEvent, note: Note)]>([])

    public init(base: any AuditLog, note: @escaping @Sendable () async throws -> Note) {
        self.base = base
        self.note = note
    }

    public func append(_ events: [AuditEvent]) async throws -> [Int64] {
        let sequences = try await base.append(events)
        let noted = try await note()
        state.withLock { $0 += events.map { ($0, noted) } }
        return sequences
    }

    /// Every event appended, oldest first, with its note.
    public var appends: [(event: AuditEvent, note: Note)] { state.withLock { $0 } }

    /// Every event appended, oldest first.
    public var events: [AuditEvent] { appends.map(\.event) }
}
