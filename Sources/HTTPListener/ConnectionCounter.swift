import Synchronization

/// The open connections of one listener, shared by its channels (they run on several event loops).
final class ConnectionCounter: Sendable {
    private let count = Atomic<Int>(0)

    /// Counts a new connection; returns how many are open with it.
    func opened() -> Int {
        count.wrappingAdd(1, ordering: .relaxed).newValue
    }

    func closed() {
        count.wrappingSubtract(1, ordering: .relaxed)
    }

    var current: Int { count.load(ordering: .relaxed) }
}
