public import Foundation
import Synchronization

/// A count per credential and UTC day: how many full PANs a key may reveal in one day
/// (PCI DSS 7.2: access limited to what the job needs). In memory, per process.
public final class DailyQuota: Sendable {
    /// Units per key per UTC day.
    public let limit: Int
    private let used = Mutex<(day: Int64, counts: [String: Int])>((0, [:]))

    /// - Parameter limit: units per key per UTC day (positive).
    public init(limit: Int) {
        precondition(limit > 0, "a daily limit must be positive")
        self.limit = limit
    }

    /// Takes `count` units of `key`'s day. Returns `nil` if allowed (and counts them), else the
    /// whole seconds until the next UTC day.
    public func take(_ key: String, count: Int, now: Date = Date()) -> Int? {
        let seconds = Int64(now.timeIntervalSince1970.rounded(.down))
        let day = seconds / 86_400
        return used.withLock { used in
            if used.day != day { used = (day, [:]) }
            let spent = used.counts[key, default: 0]
            guard spent + count <= limit else { return Int(max(1, (day + 1) * 86_400 - seconds)) }
            used.counts[key] = spent + count
            return nil
        }
    }
}
