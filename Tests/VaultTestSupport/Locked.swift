import Synchronization

/// A value behind a lock, as a class: for state a test shares with an escaping closure (a
/// `Mutex` is not copyable and cannot be captured by one).
public final class Locked<Value: Sendable>: Sendable {
    private let state: Mutex<Value>

    public init(_ value: Value) {
        state = Mutex(value)
    }

    public var value: Value {
        get { state.withLock { $0 } }
        set { state.withLock { $0 = newValue } }
    }
}
