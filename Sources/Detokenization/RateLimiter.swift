import Foundation
import Synchronization

/// A token bucket per credential: `rate` units (requests, cards, tokens) per second on average,
/// bursts up to `burst`.
public final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    public let rate: Double
    public let burst: Double
    private let buckets = Mutex<[String: Bucket]>([:])

    /// - Parameters:
    ///   - rate: requests per second per credential (positive).
    ///   - burst: the most requests allowed at once; defaults to `rate`.
    public init(rate: Double, burst: Double? = nil) {
        precondition(rate > 0, "rate must be positive")
        self.rate = rate
        self.burst = max(1, burst ?? rate)
    }

    /// Takes `cost` units (requests, cards, tokens) from `key`'s bucket. Returns `nil` if
    /// allowed, otherwise the whole seconds to wait before it would be. A cost above the burst
    /// passes when the bucket is full and leaves it in debt, so the average never exceeds `rate`
    /// whatever the size of one request.
    public func acquire(_ key: String, cost: Int = 1, now: ContinuousClock.Instant = .now) -> Int? {
        let cost = Double(max(cost, 1))
        let needed = min(cost, burst)
        return buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(burst, bucket.tokens + seconds * rate)
            bucket.updated = now
            defer { buckets[key] = bucket }
            guard bucket.tokens >= needed else {
                return max(1, Int(((needed - bucket.tokens) / rate).rounded(.up)))
            }
            bucket.tokens -= cost
            return nil
        }
    }
}
