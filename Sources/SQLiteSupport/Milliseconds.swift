public import Foundation

extension Date {
    /// Whole milliseconds since 1970, rounded down: how the stores keep times (`…_at_ms`
    /// columns) and the audit chain MACs them.
    @inlinable
    public var milliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }

    /// The time `milliseconds` after 1970, as read back from a store.
    @inlinable
    public init(milliseconds: Int64) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}

extension Duration {
    /// Whole milliseconds, rounded towards zero (for latencies in logs).
    @inlinable
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }
}
