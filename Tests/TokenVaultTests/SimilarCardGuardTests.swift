import Foundation
import Testing

@testable import TokenVault

/// The similar-card guard on its own: distinct internal fingerprints counted per principal and
/// BIN + last four over the current and previous window, refused past the limit.
@Suite("Similar-card guard")
struct SimilarCardGuardTests {
    typealias Card = (bin: String, last4: String, fingerprint: [UInt8])

    static func card(_ number: UInt8, bin: String = "411111", last4: String = "1111") -> Card {
        (bin, last4, [number, 0, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: number, count: 8))
    }

    static let start = Date(timeIntervalSince1970: 1_000_000)

    @Test("distinct cards past the limit are refused; the first refusal alone is reported")
    func limit() {
        let guardian = SimilarCardGuard(limit: 3, window: 3600)
        let decisions = guardian.admit(principal: "t/a", cards: (1...5).map { Self.card($0) }, now: Self.start)
        #expect(
            decisions == [
                .admitted, .admitted, .admitted, .refused(report: true, distinct: 4),
                .refused(report: false, distinct: 4),
            ])
        // A card already counted is admitted again; a new one is still refused, unreported.
        let again = guardian.admit(principal: "t/a", cards: [Self.card(2), Self.card(9)], now: Self.start)
        #expect(again == [.admitted, .refused(report: false, distinct: 4)])
    }

    @Test("counts are per principal and per BIN, BIN length and last four")
    func scopes() {
        let guardian = SimilarCardGuard(limit: 1, window: 3600)
        #expect(guardian.admit(principal: "t/a", cards: [Self.card(1)], now: Self.start) == [.admitted])
        #expect(guardian.admit(principal: "t/b", cards: [Self.card(2)], now: Self.start) == [.admitted])
        #expect(guardian.admit(principal: "t/a", cards: [Self.card(3, last4: "2222")], now: Self.start) == [.admitted])
        #expect(
            guardian.admit(principal: "t/a", cards: [Self.card(4, bin: "41111111")], now: Self.start) == [.admitted])
        #expect(guardian.admit(principal: "t/a", cards: [Self.card(5, bin: "424242")], now: Self.start) == [.admitted])
        #expect(
            guardian.admit(principal: "t/a", cards: [Self.card(6)], now: Self.start) == [
                .refused(report: true, distinct: 2)
            ])
    }

    @Test("the previous window still counts; two windows later nothing does")
    func windows() {
        let guardian = SimilarCardGuard(limit: 2, window: 100)
        #expect(
            guardian.admit(principal: "t/a", cards: [Self.card(1), Self.card(2)], now: Self.start) == [
                .admitted, .admitted,
            ])
        let next = Self.start.addingTimeInterval(150)
        // Card 1 of the previous window is admitted and carried over; card 3 would be the third.
        #expect(
            guardian.admit(principal: "t/a", cards: [Self.card(1), Self.card(3)], now: next) == [
                .admitted, .refused(report: true, distinct: 3),
            ])
        let later = Self.start.addingTimeInterval(400)
        #expect(
            guardian.admit(principal: "t/a", cards: [Self.card(3), Self.card(4)], now: later) == [
                .admitted, .admitted,
            ])
    }

    @Test("review: memory is bounded: past maximumBuckets a new window starts, and a bucket still holds to its limit")
    func bucketsAreBounded() {
        let guardian = SimilarCardGuard(limit: 2, window: 3600, maximumBuckets: 100)
        // 1,000 different BINs and last fours in batches of 10: the window rolls over each time
        // it holds 100 buckets, so at most two windows' worth are ever held.
        for batch in 0..<100 {
            let flood = (0..<10).map { index in Self.card(1, bin: String(400_000 + batch * 10 + index), last4: "0000") }
            #expect(guardian.admit(principal: "t/a", cards: flood, now: Self.start).allSatisfy { $0 == .admitted })
            #expect(guardian.heldBuckets <= 200)
        }
        // One bucket within the new window is still limited, counting the previous window too.
        #expect(
            guardian.admit(principal: "t/b", cards: [Self.card(1), Self.card(2), Self.card(3)], now: Self.start) == [
                .admitted, .admitted, .refused(report: true, distinct: 3),
            ])
    }
}
