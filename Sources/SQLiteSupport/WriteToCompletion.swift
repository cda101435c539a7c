public import GRDB

extension DatabaseWriter {
    /// Like GRDB's `write`, but blind to the cancellation of the calling task: once asked for, the
    /// transaction runs and commits (or fails on its own).
    ///
    /// For group commits (the flush of a `GroupCommitter`), which run in the task of one caller with
    /// the items of others: GRDB's async `write` interrupts the transaction when that task is
    /// cancelled, which would fail the callers that were not.
    public func writeToCompletion<T: Sendable>(_ updates: @escaping @Sendable (Database) throws -> T) async throws -> T
    {
        try await withCheckedThrowingContinuation { continuation in
            asyncWrite(updates) { _, result in continuation.resume(with: result) }
        }
    }
}
