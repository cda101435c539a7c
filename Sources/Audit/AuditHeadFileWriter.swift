import Synchronization

/// Writes the audit head file after commits.
///
/// By default each commit writes the file before the writer moves on (the CLI, tests). A server
/// calls ``deferWrites()``: commits then only hand over their head, and one background task
/// writes the newest one, so a burst of commits costs one file write and fsync, not one each.
/// The file never runs ahead of the database; it may lag by the commits of the last write.
final class AuditHeadFileWriter: Sendable {
    let path: String
    private struct State {
        var deferred = false
        var pending: AuditHead?
        var draining = false
    }
    private let state = Mutex(State())

    init(path: String) {
        self.path = path
    }

    func deferWrites() {
        state.withLock { $0.deferred = true }
    }

    /// Called after a commit, in commit order.
    func committed(_ head: AuditHead) {
        let action = state.withLock { state -> (write: Bool, drain: Bool) in
            guard state.deferred else { return (true, false) }
            if state.pending.map({ $0.sequence < head.sequence }) ?? true { state.pending = head }
            guard !state.draining else { return (false, false) }
            state.draining = true
            return (false, true)
        }
        if action.write { try? head.write(path: path) }
        if action.drain { Task.detached { self.drain() } }
    }

    private func drain() {
        while let head = state.withLock({ state -> AuditHead? in
            defer { state.pending = nil }
            if state.pending == nil { state.draining = false }
            return state.pending
        }) {
            try? head.write(path: path)
        }
    }

    /// Writes what is pending now (graceful shutdown).
    func flush() {
        let head = state.withLock { state -> AuditHead? in
            defer { state.pending = nil }
            return state.pending
        }
        if let head { try? head.write(path: path) }
    }
}
