import Foundation
import Ledger
import Testing
import VaultTestSupport

@Suite("Two-phase transfers", .timeLimit(.minutes(10)))
struct TwoPhaseTests {
    /// Alice (no overdraft) holds 1,000 from the bank; the merchant is empty.
    private func setUp(_ ledger: SQLiteLedger) async throws {
        _ = try await ledger.createAccount(id: "bank", currency: Money.eur)
        _ = try await ledger.createAccount(id: "alice", currency: Money.eur, flags: .debitsMustNotExceedCredits)
        _ = try await ledger.createAccount(id: "merchant", currency: Money.eur)
        try await ledger.fund("fund", from: "bank", to: "alice", 1_000)
    }

    private func hold(
        _ ledger: SQLiteLedger, _ id: String, _ amount: Int64, expiresAt: Date? = nil
    ) async throws {
        let result = try await ledger.submit(.make(id, "alice", "merchant", amount, .pending(expiresAt: expiresAt)))
        try #require(result == .created, "hold \(id): \(result)")
    }

    @Test("A pending transfer holds the amount: available drops, posted does not")
    func pendingHolds() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            try await hold(ledger, "p1", 400)

            let alice = try await ledger.balances("alice")
            #expect(alice == Balances(creditsPosted: 1_000, debitsPending: 400))
            #expect(alice.posted == 1_000)
            #expect(alice.pending == -400)
            #expect(alice.available == 600)

            let merchant = try await ledger.balances("merchant")
            #expect(merchant == Balances(creditsPending: 400))
            #expect(merchant.posted == 0)
            #expect(merchant.pending == 400)
            #expect(merchant.available == 0)

            let stored = try #require(try await ledger.transfer("p1"))
            #expect(stored.kind == "pending")
            #expect(stored.state == .pending)
            #expect(stored.amount == 400)
            try await ledger.verifyInvariants()
        }
    }

    @Test("Posting the full amount moves the hold to posted")
    func postFull() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            try await hold(ledger, "p1", 400)
            #expect(try await ledger.submit(.post("c1", "p1", 400)) == .created)

            #expect(try await ledger.balances("alice") == Balances(debitsPosted: 400, creditsPosted: 1_000))
            #expect(try await ledger.balances("merchant") == Balances(creditsPosted: 400))
            #expect(try await ledger.transfer("p1")?.state == .posted)
            let post = try #require(try await ledger.transfer("c1"))
            #expect(post.kind == "post")
            #expect(post.pendingID == "p1")
            #expect(post.amount == 400)
            #expect(post.debitAccountID == "alice")
            #expect(post.creditAccountID == "merchant")

            #expect(try await ledger.submit(.post("c2", "p1", 400)).code == .pendingAlreadyPosted)
            #expect(try await ledger.submit(.void("v1", "p1")).code == .pendingAlreadyPosted)
            #expect(try await ledger.balances("alice") == Balances(debitsPosted: 400, creditsPosted: 1_000))
            try await ledger.verifyInvariants()
        }
    }

    @Test("Posting part of the hold posts that part and releases the rest")
    func postPartial() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            try await hold(ledger, "p1", 300)
            #expect(try await ledger.submit(.post("c1", "p1", 100)) == .created)

            let alice = try await ledger.balances("alice")
            #expect(alice == Balances(debitsPosted: 100, creditsPosted: 1_000))
            #expect(alice.available == 900)
            #expect(try await ledger.balances("merchant") == Balances(creditsPosted: 100))
            #expect(try await ledger.transfer("p1")?.state == .posted)
            // The released remainder cannot be posted later.
            #expect(try await ledger.submit(.post("c2", "p1", 200)).code == .pendingAlreadyPosted)
            try await ledger.verifyInvariants()
        }
    }

    @Test("Voiding releases the hold and moves nothing")
    func void() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            try await hold(ledger, "p1", 200)
            #expect(try await ledger.submit(.void("v1", "p1")) == .created)

            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 1_000))
            #expect(try await ledger.balances("merchant") == Balances())
            #expect(try await ledger.transfer("p1")?.state == .voided)
            let void = try #require(try await ledger.transfer("v1"))
            #expect(void.kind == "void")
            #expect(void.pendingID == "p1")

            #expect(try await ledger.submit(.void("v2", "p1")).code == .pendingAlreadyVoided)
            #expect(try await ledger.submit(.post("c1", "p1", 200)).code == .pendingAlreadyVoided)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 1_000))
            try await ledger.verifyInvariants()
        }
    }

    @Test("Post refusals: more than pending, not positive, unknown or not pending")
    func postRefusals() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            try await hold(ledger, "p1", 300)

            #expect(try await ledger.submit(.post("c1", "p1", 301)).code == .postExceedsPending)
            #expect(try await ledger.submit(.post("c2", "p1", 0)).code == .invalidAmount)
            #expect(try await ledger.submit(.post("c3", "p1", -5)).code == .invalidAmount)
            #expect(try await ledger.submit(.post("c4", "nope", 10)).code == .pendingNotFound)
            #expect(try await ledger.submit(.void("v1", "nope")).code == .pendingNotFound)
            // A single-phase transfer is not a pending one.
            #expect(try await ledger.submit(.post("c5", "fund", 10)).code == .pendingNotFound)
            #expect(try await ledger.submit(.void("v2", "fund")).code == .pendingNotFound)

            // Nothing moved and the hold is intact and still postable.
            #expect(try await ledger.transfer("p1")?.state == .pending)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 1_000, debitsPending: 300))
            #expect(try await ledger.balances("merchant") == Balances(creditsPending: 300))
            #expect(try await ledger.submit(.post("c1", "p1", 300)) == .created)
        }
    }

    @Test("Expiry: no post or void after the deadline, expirePending releases each hold once")
    func expiry() async throws {
        let clock = ManualClock()
        try await withLedger(clock: clock) { ledger, _ in
            try await setUp(ledger)
            try await hold(ledger, "p1", 300, expiresAt: clock.now + 60)
            try await hold(ledger, "p2", 200, expiresAt: clock.now + 60)
            try await hold(ledger, "p3", 100, expiresAt: clock.now + 3_600)
            try await hold(ledger, "p4", 50)

            #expect(try await ledger.expirePending() == 0)
            clock.advance(by: 59)
            #expect(try await ledger.expirePending() == 0)
            #expect(try await ledger.balances("alice").available == 350)

            clock.advance(by: 2)
            // Past the deadline but not yet swept: the hold is still there and cannot be used.
            #expect(try await ledger.submit(.post("c1", "p1", 300)).code == .pendingExpired)
            #expect(try await ledger.submit(.void("v2", "p2")).code == .pendingExpired)
            #expect(try await ledger.transfer("p1")?.state == .pending)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 1_000, debitsPending: 650))

            #expect(try await ledger.expirePending() == 2)
            #expect(try await ledger.transfer("p1")?.state == .expired)
            #expect(try await ledger.transfer("p2")?.state == .expired)
            #expect(try await ledger.transfer("p3")?.state == .pending)
            #expect(try await ledger.transfer("p4")?.state == .pending)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 1_000, debitsPending: 150))
            #expect(try await ledger.balances("merchant") == Balances(creditsPending: 150))
            try await ledger.verifyInvariants()

            // Released once: sweeping again finds nothing, and the expired holds stay closed.
            #expect(try await ledger.expirePending() == 0)
            #expect(try await ledger.submit(.post("c1", "p1", 300)).code == .pendingExpired)
            #expect(try await ledger.submit(.void("v1", "p1")).code == .pendingExpired)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 1_000, debitsPending: 150))

            // A hold without a deadline never expires; the other one does in its time.
            clock.advance(by: 1_000_000)
            #expect(try await ledger.expirePending() == 1)
            #expect(try await ledger.transfer("p4")?.state == .pending)
            #expect(try await ledger.submit(.post("c4", "p4", 50)) == .created)
            #expect(try await ledger.balances("alice") == Balances(debitsPosted: 50, creditsPosted: 1_000))
            try await ledger.verifyInvariants()
        }
    }

    @Test("A hold counts against a no-overdraft account")
    func holdCountsAgainstOverdraft() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            try await hold(ledger, "p1", 700)

            #expect(try await ledger.submit(.make("t1", "alice", "merchant", 301)).code == .insufficientFunds)
            #expect(
                try await ledger.submit(.make("p2", "alice", "merchant", 301, .pending(expiresAt: nil))).code
                    == .insufficientFunds)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 1_000, debitsPending: 700))

            #expect(try await ledger.submit(.make("t2", "alice", "merchant", 300)) == .created)
            #expect(try await ledger.balances("alice").available == 0)
            #expect(try await ledger.submit(.make("t3", "alice", "merchant", 1)).code == .insufficientFunds)

            // Voiding the hold frees the funds again.
            #expect(try await ledger.submit(.void("v1", "p1")) == .created)
            #expect(try await ledger.balances("alice").available == 700)
            #expect(try await ledger.submit(.make("t3", "alice", "merchant", 700)) == .created)
            try await ledger.verifyInvariants()
        }
    }

    @Test("Concurrent posts and voids of one hold: exactly one wins")
    func concurrentRelease() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            try await hold(ledger, "p1", 500)
            let results = try await withThrowingTaskGroup(of: TransferResult.self) { group in
                for index in 0..<24 {
                    group.addTask {
                        try await ledger.submit(
                            index.isMultiple(of: 2) ? .post("c\(index)", "p1", 500) : .void("v\(index)", "p1"))
                    }
                }
                return try await group.reduce(into: [TransferResult]()) { $0.append($1) }
            }
            #expect(results.filter { $0 == .created }.count == 1)
            let state = try #require(try await ledger.transfer("p1")?.state)
            let loser: LedgerError.Code = state == .posted ? .pendingAlreadyPosted : .pendingAlreadyVoided
            #expect(results.filter { $0.code == loser }.count == 23)
            let alice = try await ledger.balances("alice")
            #expect(alice.debitsPending == 0)
            #expect(alice.debitsPosted == (state == .posted ? 500 : 0))
            try await ledger.verifyInvariants()
        }
    }
}
