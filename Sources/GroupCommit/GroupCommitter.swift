import Synchronization

/// Shares one durable commit among concurrent callers (group commit).
///
/// Each caller submits its items and waits. While a commit is running, new submissions queue
/// up; when it finishes, everything queued is committed together in the next one. So a lone
/// request commits at once, and under load many requests share one fsync: durability without
/// giving up throughput. Results are returned to each caller in its own order.
///
/// The commits run in the callers' own tasks (leader handoff), never in a task of their own:
/// a submitter that finds nobody committing becomes the leader, commits its items with what is
/// queued, resumes the callers of that commit and, if more are queued, wakes the first of them
/// as the next leader. So each caller leads at most one commit and then returns: nobody's
/// latency grows with draining the queue for others.
///
/// Invariant (under `state`'s lock): there is at most one leader, and `flushing` is true exactly
/// while there is one. Every queued waiter is either in the batch a leader is committing or
/// still in `pending`, which the leader hands on before it clears `flushing`; so when `flushing`
/// is false, `pending` is empty and no waiter is left behind.
public final class GroupCommitter<Item: Sendable, Outcome: Sendable>: Sendable {
    /// Commits `items` durably; returns one outcome per item, in order.
    ///
    /// It runs in the task of one of the callers (the leader) with other callers' items in the
    /// batch, so it should finish even if that task is cancelled: stopping would fail callers
    /// that were not cancelled.
    public typealias Flush = @Sendable ([Item]) async throws -> [Outcome]

    /// What a queued waiter is resumed with.
    private enum Signal: Sendable {
        /// Its items were committed; these are their outcomes.
        case outcomes([Outcome])
        /// Its items are not committed yet: it is the leader now and commits them.
        case lead
    }

    private struct Waiter: Sendable {
        var items: [Item]
        var continuation: CheckedContinuation<Signal, any Error>
    }

    private struct State: Sendable {
        /// Waiters not yet in a batch, in arrival order.
        var pending: [Waiter] = []
        /// Whether a leader exists (committing, or woken and about to).
        var flushing = false
    }

    private let state = Mutex(State())
    private let flush: Flush
    /// The most items one commit takes, to bound the latency of the callers in it.
    private let maximumItemsPerCommit: Int

    /// Told the queue's length each time a submission queues, so tests can wait for a batch to
    /// form without sleeping.
    private let didQueue: @Sendable (Int) -> Void

    public convenience init(maximumItemsPerCommit: Int = 20_000, flush: @escaping Flush) {
        self.init(maximumItemsPerCommit: maximumItemsPerCommit, didQueue: { _ in }, flush: flush)
    }

    init(maximumItemsPerCommit: Int, didQueue: @escaping @Sendable (Int) -> Void, flush: @escaping Flush) {
        self.maximumItemsPerCommit = maximumItemsPerCommit
        self.didQueue = didQueue
        self.flush = flush
    }

    /// Commits `items` with whatever else is queued; returns their outcomes in order.
    ///
    /// Cancellation does not cut the wait short: the items may be in a commit already, so the
    /// caller waits for their outcomes, and a commit it leads runs on (see ``Flush``).
    public func submit(_ items: [Item]) async throws -> [Outcome] {
        guard !items.isEmpty else { return [] }
        // Without contention the caller leads at once, without suspending.
        if state.withLock({ Self.takeLead(&$0) }) { return try await lead(items) }
        let signal = try await withCheckedThrowingContinuation { continuation in
            // Queue only while someone leads (checked under the same lock as the enqueue), so a
            // leader that finds the queue empty and steps down cannot strand this waiter.
            let queued = state.withLock { state -> Int? in
                if Self.takeLead(&state) { return nil }
                state.pending.append(Waiter(items: items, continuation: continuation))
                return state.pending.count
            }
            if let queued { didQueue(queued) } else { continuation.resume(returning: .lead) }
        }
        switch signal {
        case .outcomes(let outcomes): return outcomes
        case .lead: return try await lead(items)
        }
    }

    /// Makes the caller the leader if there is none.
    private static func takeLead(_ state: inout State) -> Bool {
        guard !state.flushing else { return false }
        state.flushing = true
        return true
    }

    /// Runs as the leader: commits `own` first, with the queued waiters that fit, resumes those
    /// waiters, hands the lead on and returns the outcomes of `own`.
    private func lead(_ own: [Item]) async throws -> [Outcome] {
        let others = takeBatch(after: own.count)
        var items = own
        for waiter in others { items += waiter.items }
        let result: Result<[Outcome], any Error>
        do {
            let outcomes = try await flush(items)
            precondition(outcomes.count == items.count, "flush must return one outcome per item")
            result = .success(outcomes)
        } catch {
            result = .failure(error)
        }
        switch result {
        case .success(let outcomes):
            var offset = own.count
            for waiter in others {
                waiter.continuation.resume(returning: .outcomes(Array(outcomes[offset..<offset + waiter.items.count])))
                offset += waiter.items.count
            }
        case .failure(let error):
            // Only this batch fails; the next leader commits the rest.
            for waiter in others { waiter.continuation.resume(throwing: error) }
        }
        handOff()
        return try Array(result.get().prefix(own.count))
    }

    /// Takes from the queue the waiters that fit in one commit beside `ownCount` items.
    private func takeBatch(after ownCount: Int) -> [Waiter] {
        state.withLock { state in
            var taken = ownCount
            var count = 0
            for waiter in state.pending {
                if taken + waiter.items.count > maximumItemsPerCommit { break }
                taken += waiter.items.count
                count += 1
            }
            let batch = Array(state.pending.prefix(count))
            state.pending.removeFirst(count)
            return batch
        }
    }

    /// Wakes the first queued waiter as the next leader, or steps down if nobody is queued.
    private func handOff() {
        let next = state.withLock { state -> Waiter? in
            guard !state.pending.isEmpty else {
                state.flushing = false
                return nil
            }
            return state.pending.removeFirst()
        }
        next?.continuation.resume(returning: .lead)
    }
}
