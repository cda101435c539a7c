public import Foundation
import Synchronization

/// A clock a test moves by hand (CVV expiry, pending-transfer expiry).
public final class ManualClock: Sendable {
    private let current: Mutex<Date>

    public init(_ start: Date = Date(timeIntervalSince1970: 1_900_000_000)) {
        current = Mutex(start)
    }

    public var now: Date { current.withLock { $0 } }

    public func advance(by interval: TimeInterval) {
        current.withLock { $0 += interval }
    }

    /// The clock as the `clock:` parameter the vault and the ledger take.
    public var function: @Sendable () -> Date { { self.now } }
}
