/// An append-only, hash-chained audit log.
public protocol AuditLog: Sendable {
    /// Appends events durably, in order; returns after the commit. Throws if they could not
    /// be written, so callers can fail closed.
    func append(_ events: [AuditEvent]) async throws
}

extension AuditLog {
    /// Appends one event durably.
    public func append(_ event: AuditEvent) async throws {
        try await append([event])
    }
}
