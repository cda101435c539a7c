import Detokenization
import Testing

/// The per-credential token bucket, driven by explicit instants.
@Suite("RateLimiter", .timeLimit(.minutes(10)))
struct RateLimiterTests {
    let start = ContinuousClock.now

    @Test("One per second: the second immediate request waits a second, then one more is allowed")
    func onePerSecond() {
        let limiter = RateLimiter(rate: 1)
        #expect(limiter.burst == 1)
        #expect(limiter.acquire("a", now: start) == nil)
        #expect(limiter.acquire("a", now: start) == 1)
        #expect(limiter.acquire("a", now: start + .milliseconds(500)) == 1)
        #expect(limiter.acquire("a", now: start + .milliseconds(1000)) == nil)
        #expect(limiter.acquire("a", now: start + .milliseconds(1001)) == 1)
    }

    @Test("A burst is allowed at once, then refills at the rate")
    func burstAndRefill() {
        let limiter = RateLimiter(rate: 8, burst: 5)
        for _ in 0..<5 { #expect(limiter.acquire("a", now: start) == nil) }
        #expect(limiter.acquire("a", now: start) == 1)
        // 125 ms brings back one request at 8 per second.
        #expect(limiter.acquire("a", now: start + .milliseconds(125)) == nil)
        #expect(limiter.acquire("a", now: start + .milliseconds(125)) != nil)
        // A long pause refills up to the burst, never more.
        let later = start + .seconds(60)
        for _ in 0..<5 { #expect(limiter.acquire("a", now: later) == nil) }
        #expect(limiter.acquire("a", now: later) == 1)
    }

    @Test("A slow rate gives the whole seconds to wait, rounded up")
    func slowRate() {
        // One request per 4 s (values exact in binary floating point).
        let limiter = RateLimiter(rate: 0.25)
        #expect(limiter.burst == 1)
        #expect(limiter.acquire("a", now: start) == nil)
        #expect(limiter.acquire("a", now: start) == 4)
        #expect(limiter.acquire("a", now: start + .seconds(1)) == 3)
        #expect(limiter.acquire("a", now: start + .milliseconds(3_500)) == 1)
        #expect(limiter.acquire("a", now: start + .seconds(4)) == nil)
        #expect(limiter.acquire("a", now: start + .seconds(4)) == 4)
    }

    @Test("Refused requests do not use up the bucket")
    func refusalsAreFree() {
        let limiter = RateLimiter(rate: 2)
        #expect(limiter.acquire("a", now: start) == nil)
        #expect(limiter.acquire("a", now: start) == nil)
        for step in 1...3 {
            #expect(limiter.acquire("a", now: start + .milliseconds(125 * step)) == 1)
        }
        #expect(limiter.acquire("a", now: start + .milliseconds(500)) == nil)
    }

    @Test("Each credential has its own bucket")
    func perCredential() {
        let limiter = RateLimiter(rate: 1)
        #expect(limiter.acquire("a", now: start) == nil)
        #expect(limiter.acquire("a", now: start) != nil)
        #expect(limiter.acquire("b", now: start) == nil)
        #expect(limiter.acquire("b", now: start) != nil)
    }

    @Test("Concurrent requests at one instant: exactly the burst gets through")
    func concurrent() async {
        let limiter = RateLimiter(rate: 50)
        let now = start
        let allowed = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<500 {
                group.addTask { limiter.acquire("a", now: now) == nil }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(allowed == 50)
    }
}
