import Synchronization

/// Shares one durable commit among concurrent callers (group commit).
///
/// Each caller submits its items and waits. While a commit is running, new submissions queue
/// up; when it finishes, everything queued is committed together in the next one. So a lone
/// request commits at once, and under load many requests share one fsync: durability without
/// giving up throughput. Results are returned to each caller in its own order.
public final class GroupCommitter<Item: Sendable, Outcome: Sendable>: Sendable {
    public typealias Flush = @Sendable ([Item]) async throws -> [Outcome]

    private struct Waiter: Sendable {
        var items: [Item]
        var continuation: CheckedContinuation<[Outcome], any Error>
    }

    private struct State: Sendable {
        var pending: [Waiter] = []
        var pendingItems = 0
        var flushing = false
    }

    private let state = Mutex(State())
    private let flush: Flush
    /// The most items one commit takes, to bound the latency of the callers in it.
    private let maximumItemsPerCommit: Int

    public init(maximumItemsPerCommit: Int = 20_000, flush: @escaping Flush) {
        self.maximumItemsPerCommit = maximumItemsPerCommit
        self.flush = flush
    }

    /// Commits `items` with whatever else is queued; returns their outcomes in order.
    public func submit(_ items: [Item]) async throws -> [Outcome] {
        guard !items.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            let leads = state.withLock { state -> Bool in
                state.pending.append(Waiter(items: items, continuation: continuation))
                state.pendingItems += items.count
                guard !state.flushing else { return false }
                state.flushing = true
                return true
            }
            if leads {
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
            state.pendingItems -= taken
            return batch
        }
    }
}
