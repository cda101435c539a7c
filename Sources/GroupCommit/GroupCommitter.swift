import Synchronization

/// Shares one durable commit among concurrent callers (group commit).
///
/// Each caller submits its items and waits. While a commit is running, new submissions queue
/// up; when it finishes, everything queued is committed together in the next one. So a lone
/// request commits at once, and under load many requests share one fsync: durability without
/// giving up throughput. Results are returned to each caller in its own order.
///
/// The commits run in one drain task, started by the first submission that finds nobody
/// committing and ended when the queue is empty; it goes straight from one commit to the next.
/// (Handing the lead from caller to caller instead, so that no task outlives a caller, cost an
/// executor hop between commits: a quarter of the ledger's batch throughput on this 2-core
/// machine, measured in docs/PERFORMANCE.md, so it was not kept.) Invariants: at most one drain
/// task runs; a submission either joins the queue while it runs or starts it; a commit's flush
/// runs to completion even if callers are cancelled (their waits are not cancellable).
public final class GroupCommitter<Item: Sendable, Outcome: Sendable>: Sendable {
    public typealias Flush = @Sendable ([Item]) async throws -> [Outcome]

    private struct Waiter: Sendable {
        var items: [Item]
        var continuation: CheckedContinuation<[Outcome], any Error>
    }

    private struct State: Sendable {
        var pending: [Waiter] = []
        var flushing = false
    }

    private let state = Mutex(State())
    private let flush: Flush
    /// The most items one commit takes, to bound the latency of the callers in it.
    private let maximumItemsPerCommit: Int

    /// Told the queue's length each time a submission queues behind a running commit, so tests
    /// can wait for a batch to form without sleeping.
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
    public func submit(_ items: [Item]) async throws -> [Outcome] {
        guard !items.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            let queued = state.withLock { state -> Int? in
                state.pending.append(Waiter(items: items, continuation: continuation))
                guard !state.flushing else { return state.pending.count }
                state.flushing = true
                return nil
            }
            if let queued {
                didQueue(queued)
            } else {
                // The first waiter with nobody flushing starts the loop; it ends when the queue is empty.
                Task { await self.drain() }
            }
        }
    }

    private func drain() async {
        while let batch = nextBatch() {
            let items = batch.flatMap(\.items)
            do {
                let outcomes = try await flush(items)
                precondition(outcomes.count == items.count, "flush must return one outcome per item")
                var offset = 0
                for waiter in batch {
                    waiter.continuation.resume(returning: Array(outcomes[offset..<offset + waiter.items.count]))
                    offset += waiter.items.count
                }
            } catch {
                for waiter in batch { waiter.continuation.resume(throwing: error) }
            }
        }
    }

    private func nextBatch() -> [Waiter]? {
        state.withLock { state in
            guard !state.pending.isEmpty else {
                state.flushing = false
                return nil
            }
            var taken = 0
            var count = 0
            for waiter in state.pending {
                if count > 0 && taken + waiter.items.count > maximumItemsPerCommit { break }
                taken += waiter.items.count
                count += 1
            }
            let batch = Array(state.pending.prefix(count))
            state.pending.removeFirst(count)
            return batch
        }
    }
}
