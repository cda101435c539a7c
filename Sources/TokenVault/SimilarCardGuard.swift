public import Foundation
import Synchronization

/// Limits how many distinct PANs sharing one BIN and last four a principal may tokenize within a
/// window.
///
/// BIN and last four are printed on receipts and stored as metadata, leaving only the middle
/// digits unknown (10⁶ candidates for a 16-digit card, 10⁵ after Luhn). Anyone who could learn
/// whether a chosen candidate is "the" card would recover it by enumeration; the vault shows
/// nothing that could tell (caller-scoped fingerprints, creator-scoped dedupe), and this guard
/// is the second wall: an honest caller almost never sends many *different* cards with the
/// same BIN and last four in an hour (a busy merchant sees a few), an enumeration sends
/// thousands. Past the limit the card is refused and one audit record per principal, BIN and
/// last four and window says so.
///
/// Counted per process, over two fixed windows (the current and the previous one), in memory:
/// a restart or a second instance starts its own count (docs/THREAT_MODEL.md).
public final class SimilarCardGuard: Sendable {
    /// The most distinct PANs with one BIN and last four a principal may tokenize per window.
    public let limit: Int
    /// The window's length.
    public let window: TimeInterval

    private struct Bucket {
        /// Prefixes of the internal fingerprints seen (8 bytes of 16: collisions are negligible
        /// at the counts that matter, and a collision only undercounts by one).
        var fingerprints: [UInt64] = []
        var reported = false
    }

    /// The buckets of one principal, keyed by BIN length, BIN and last four packed into one
    /// number: the principal's string is hashed once per batch, not once per card.
    private typealias Buckets = [UInt64: Bucket]

    private struct State {
        var windowStart: Date = .distantPast
        var current: [String: Buckets] = [:]
        var previous: [String: Buckets] = [:]
        /// Buckets in `current`, all principals together.
        var bucketCount = 0
    }

    /// The most buckets (principal, BIN and last four) one window holds before a new window
    /// starts early: memory stays bounded (about 100 bytes a bucket, two windows) whatever the
    /// tokenize rate. Only a flood of millions of different BINs and last fours an hour reaches
    /// it, and it shortens the window, it never lets more than `limit` cards of one bucket in
    /// within one window.
    public let maximumBuckets: Int

    /// The buckets held now, both windows (for tests of the memory bound).
    var heldBuckets: Int {
        state.withLock { state in
            (state.current.values.map(\.count) + state.previous.values.map(\.count)).reduce(0, +)
        }
    }

    /// What became of one card.
    public enum Decision: Sendable, Equatable {
        case admitted
        /// Refused; `report` is true for the first refusal of this principal, BIN and last four
        /// in the window (the one to audit).
        case refused(report: Bool, distinct: Int)
    }

    private let state = Mutex(State())

    /// - Parameters:
    ///   - limit: distinct PANs per BIN and last four per principal per window (at least 1).
    ///   - window: seconds (default one hour).
    ///   - maximumBuckets: see ``maximumBuckets`` (default 2,000,000).
    public init(limit: Int = 10, window: TimeInterval = 3600, maximumBuckets: Int = 2_000_000) {
        precondition(limit >= 1 && window > 0 && maximumBuckets > 0, "the similar-card limits must be positive")
        self.limit = limit
        self.window = window
        self.maximumBuckets = maximumBuckets
    }

    /// Admits or refuses a batch of cards of one principal, in order, under one lock.
    /// - Parameter cards: BIN, last four and internal fingerprint (at least 8 bytes) of each card.
    func admit(
        principal: String, cards: some Collection<(bin: String, last4: String, fingerprint: [UInt8])>, now: Date
    ) -> [Decision] {
        state.withLock { state in
            if now.timeIntervalSince(state.windowStart) >= window || state.bucketCount >= maximumBuckets {
                // Two windows or more since the last start: nothing of the old counts remains.
                state.previous = now.timeIntervalSince(state.windowStart) >= 2 * window ? [:] : state.current
                state.current = [:]
                state.windowStart = now
                state.bucketCount = 0
            }
            // Taken out of the state while in use, so that every bucket is changed in place
            // (no copy-on-write), and put back at the end.
            var current = state.current.removeValue(forKey: principal) ?? [:]
            defer { if !current.isEmpty { state.current[principal] = current } }
            let previous = state.previous[principal]
            var decisions = [Decision]()
            decisions.reserveCapacity(cards.count)
            let bucketsBefore = current.count
            for card in cards {
                let key = Self.pack(bin: card.bin, last4: card.last4)
                let prefix = Self.prefix(card.fingerprint)
                let earlier = previous?[key]?.fingerprints ?? []
                decisions.append(decide(prefix, earlier: earlier, bucket: &current[key, default: Bucket()]))
            }
            state.bucketCount += current.count - bucketsBefore
            return decisions
        }
    }

    /// The decision for one card whose bucket in the current window is `bucket`; `earlier` is
    /// its bucket's fingerprints in the previous window.
    private func decide(_ prefix: UInt64, earlier: [UInt64], bucket: inout Bucket) -> Decision {
        if bucket.fingerprints.contains(prefix) { return .admitted }
        if earlier.contains(prefix) {
            bucket.fingerprints.append(prefix)
            return .admitted
        }
        let distinct =
            earlier.isEmpty
            ? bucket.fingerprints.count
            : bucket.fingerprints.count + earlier.count { !bucket.fingerprints.contains($0) }
        guard distinct < limit else {
            let report = !bucket.reported
            bucket.reported = true
            return .refused(report: report, distinct: distinct + 1)
        }
        bucket.fingerprints.append(prefix)
        return .admitted
    }

    /// The first 8 bytes of a fingerprint, big-endian.
    private static func prefix(_ fingerprint: [UInt8]) -> UInt64 {
        var value = UInt64(0)
        for byte in fingerprint.prefix(8) { value = value << 8 | UInt64(byte) }
        return value
    }

    /// BIN length, BIN and last four in one number, without allocating.
    private static func pack(bin: String, last4: String) -> UInt64 {
        var value = UInt64(bin.utf8.count)
        for byte in bin.utf8 { value = value &* 10 &+ UInt64(byte &- 48) }
        for byte in last4.utf8 { value = value &* 10 &+ UInt64(byte &- 48) }
        return value
    }
}
