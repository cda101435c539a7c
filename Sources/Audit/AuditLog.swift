/// An append-only, hash-chained audit log.
public protocol AuditLog: Sendable {
    /// Appends events durably, in order; returns after the commit with their sequence numbers.
    /// Throws if they could not be written, so callers can fail closed.
    @discardableResult
    func append(_ events: [AuditEvent]) async throws -> [Int64]
}

extension AuditLog {
    /// Appends one event durably; returns its sequence number.
    @discardableResult
    public func append(_ event: AuditEvent) async throws -> Int64 {
        try await append([event])[0]
    }
}
