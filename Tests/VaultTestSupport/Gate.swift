import Synchronization

/// A one-shot barrier: ``wait()`` suspends until ``open()``; after that it returns at once.
///
/// Counts the callers that reached it, and ``waitForArrivals(_:)`` is resumed by the arrival
/// that makes the count, not by polling against a deadline: a loaded machine makes a test
/// slower, never wrong. Both waits end when their task is cancelled (a `.timeLimit` does), so a
/// test that fails before it opens the gate cannot hang on it.
public final class Gate: Sendable {
    private struct State {
        var isOpen = false
        var arrivals = 0
        var nextID = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var watchers: [Int: (count: Int, continuation: CheckedContinuation<Void, any Error>)] = [:]

        mutating func makeID() -> Int {
            nextID += 1
            return nextID
        }
    }

    private let state = Mutex(State())

    public init() {}

    /// Arrives, and suspends until the gate opens (or the task is cancelled).
    public func wait() async {
        let id = state.withLock { $0.makeID() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let (resumeNow, ready) = state.withLock { state in
                    state.arrivals += 1
                    let ready = Self.takeReady(&state)
                    if state.isOpen || Task.isCancelled { return (true, ready) }
                    state.waiters[id] = continuation
                    return (false, ready)
                }
                for watcher in ready { watcher.resume() }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// How many callers have reached the gate.
    public var arrivals: Int { state.withLock { $0.arrivals } }

    /// Opens the gate: every waiter resumes, and later callers pass at once.
    public func open() {
        let waiters = state.withLock { state in
            state.isOpen = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Suspends until `count` callers have reached the gate.
    /// - Throws: `CancellationError` if the task is cancelled first.
    public func waitForArrivals(_ count: Int) async throws {
        let id = state.withLock { $0.makeID() }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    if state.arrivals >= count { return .success(()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.watchers[id] = (count, continuation)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            state.withLock { $0.watchers.removeValue(forKey: id) }?.continuation.resume(throwing: CancellationError())
        }
    }

    /// Removes and returns the watchers whose count has been reached.
    private static func takeReady(_ state: inout State) -> [CheckedContinuation<Void, any Error>] {
        let ready = state.watchers.filter { $0.value.count <= state.arrivals }
        for id in ready.keys { state.watchers.removeValue(forKey: id) }
        return ready.values.map(\.continuation)
    }
}
