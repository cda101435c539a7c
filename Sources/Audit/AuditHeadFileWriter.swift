import Synchronization

/// Writes the audit head file after commits.
///
/// By default each commit writes the file before the writer moves on (the CLI, tests). A server
/// runs ``writeDeferred()`` for its lifetime (a service owns the loop): commits then only hand
/// over their head, and the loop writes the newest one, so a burst of commits costs one file
/// write and fsync, not one each. ``finish()`` ends the loop, which then writes what is pending.
/// The file never runs ahead of the database; it may lag by the commits of the last write.
final class AuditHeadFileWriter: Sendable {
    let path: String
    private struct State {
        var deferred = false
        var pending: AuditHead?
    }
    private let state = Mutex(State())
    /// Wakes the loop; at most one wake-up is kept, since one write covers every pending commit.
    private let wakeUps: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(path: String) {
        self.path = path
        (wakeUps, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Called after a commit, in commit order.
    func committed(_ head: AuditHead) {
        let deferred = state.withLock { state -> Bool in
            guard state.deferred else { return false }
            if state.pending.map({ $0.sequence < head.sequence }) ?? true { state.pending = head }
            return true
        }
        if deferred { wake.yield() } else { try? head.write(path: path) }
    }

    /// Defers writes to this loop until ``finish()``; then writes what is pending and returns.
    func writeDeferred() async {
        state.withLock { $0.deferred = true }
        for await _ in wakeUps { flush() }
        state.withLock { $0.deferred = false }
        flush()
    }

    /// Ends ``writeDeferred()``.
    func finish() {
        wake.finish()
    }

    /// Writes what is pending now.
    func flush() {
        let head = state.withLock { state -> AuditHead? in
            defer { state.pending = nil }
            return state.pending
        }
        if let head { try? head.write(path: path) }
    }
}
