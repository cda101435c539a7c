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

    private struct Key: Hashable {
        var principal: String
        /// BIN length, BIN and last four packed into one number.
        var card: UInt64
    }

    private struct Bucket {
        /// Prefixes of the internal fingerprints seen (8 bytes of 16: collisions are negligible
        /// at the counts that matter, and a collision only undercounts by one).
        var fingerprints: [UInt64] = []
        var reported = false
    }

    private struct State {
        var windowStart: Date = .distantPast
        var current: [Key: Bucket] = [:]
        var previous: [Key: Bucket] = [:]
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
    public init(limit: Int = 10, window: TimeInterval = 3600) {
        precondition(limit >= 1 && window > 0, "the similar-card limit and window must be positive")
        self.limit = limit
        self.window = window
    }

    /// Admits or refuses a batch of cards of one principal, in order, under one lock.
    func admit(
        principal: String, cards: [(bin: String, last4: String, fingerprint: [UInt8])], now: Date
    ) -> [Decision] {
        state.withLock { state in
            if now.timeIntervalSince(state.windowStart) >= window {
                // Two windows or more since the last start: nothing of the old counts remains.
                state.previous = now.timeIntervalSince(state.windowStart) >= 2 * window ? [:] : state.current
                state.current = [:]
                state.windowStart = now
            }
            return cards.map { card in
                let key = Key(principal: principal, card: Self.pack(bin: card.bin, last4: card.last4))
                let prefix = card.fingerprint.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                var bucket = state.current[key] ?? Bucket()
                let earlier = state.previous[key]?.fingerprints ?? []
                if bucket.fingerprints.contains(prefix) { return .admitted }
                if earlier.contains(prefix) {
                    bucket.fingerprints.append(prefix)
                    state.current[key] = bucket
                    return .admitted
                }
                let distinct = bucket.fingerprints.count + earlier.count { !bucket.fingerprints.contains($0) }
                guard distinct < limit else {
                    let report = !bucket.reported
                    bucket.reported = true
                    state.current[key] = bucket
                    return .refused(report: report, distinct: distinct + 1)
                }
                bucket.fingerprints.append(prefix)
                state.current[key] = bucket
                return .admitted
            }
        }
    }

    private static func pack(bin: String, last4: String) -> UInt64 {
        var value = UInt64(bin.utf8.count)
        for byte in Array(bin.utf8) + Array(last4.utf8) { value = value &* 10 &+ UInt64(byte &- 48) }
        return value
    }
}
