import Foundation
import Ledger
import Testing

@Suite("Idempotent transfer ids", .timeLimit(.minutes(10)))
struct IdempotencyTests {
    private func setUp(_ ledger: SQLiteLedger) async throws {
        _ = try await ledger.createAccount(id: "bank", currency: Money.eur)
        _ = try await ledger.createAccount(id: "alice", currency: Money.eur, flags: .debitsMustNotExceedCredits)
        _ = try await ledger.createAccount(id: "bob", currency: Money.eur)
    }

    @Test("A retry with the same fields returns exists and moves nothing")
    func retry() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let request = TransferRequest.make("t1", "bank", "alice", 700)
            #expect(try await ledger.submit(request) == .created)
            let before = try await ledger.balances("alice")
            let stored = try await ledger.transfer("t1")

            #expect(try await ledger.submit(request) == .exists)
            #expect(try await ledger.createTransfers([request, request]) == [.exists, .exists])
            #expect(try await ledger.balances("alice") == before)
            #expect(try await ledger.balances("bank") == Balances(debitsPosted: 700))
            #expect(try await ledger.transfer("t1") == stored)
            #expect(try await ledger.transfers(of: "alice").count == 1)
        }
    }

    @Test("The same id twice in one call creates once")
    func duplicateInOneCall() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let request = TransferRequest.make("t1", "bank", "alice", 5)
            #expect(try await ledger.createTransfers([request, request]) == [.created, .exists])
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 5))
        }
    }

    @Test(
        "The same id with other fields is refused",
        arguments: [
            TransferRequest.make("t1", "bank", "alice", 701),
            TransferRequest.make("t1", "bank", "bob", 700),
            TransferRequest.make("t1", "bob", "alice", 700),
            TransferRequest.make("t1", "bank", "alice", 700, .pending(expiresAt: nil)),
            TransferRequest.make("t1", "bank", "alice", 700, .post(pendingID: "p1")),
            TransferRequest.make("t1", "bank", "alice", 700, .void(pendingID: "p1")),
        ])
    func differentFields(other: TransferRequest) async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            _ = try await ledger.submit(.make("p1", "bank", "bob", 50, .pending(expiresAt: nil)))
            #expect(try await ledger.submit(.make("t1", "bank", "alice", 700)) == .created)
            let balances = try await (ledger.balances("bank"), ledger.balances("alice"), ledger.balances("bob"))

            #expect(try await ledger.submit(other).code == .transferExists)
            let after = try await (ledger.balances("bank"), ledger.balances("alice"), ledger.balances("bob"))
            #expect(after == balances)
            #expect(try await ledger.transfer("p1")?.state == .pending)
        }
    }

    @Test("Pending, post and void ids are idempotent too")
    func twoPhaseRetries() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let expiry = Date(timeIntervalSince1970: 4_000_000_000.123)
            let pending = TransferRequest.make("p1", "bank", "alice", 100, .pending(expiresAt: expiry))
            #expect(try await ledger.submit(pending) == .created)
            #expect(try await ledger.submit(pending) == .exists)
            #expect(
                try await ledger.submit(.make("p1", "bank", "alice", 100, .pending(expiresAt: expiry + 60))).code
                    == .transferExists)
            #expect(
                try await ledger.submit(.make("p1", "bank", "alice", 100, .pending(expiresAt: nil))).code
                    == .transferExists)

            #expect(try await ledger.submit(.post("c1", "p1", 60)) == .created)
            #expect(try await ledger.submit(.post("c1", "p1", 60)) == .exists)
            #expect(try await ledger.submit(.post("c1", "p1", 61)).code == .transferExists)
            #expect(try await ledger.submit(.void("c1", "p1")).code == .transferExists)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 60))

            #expect(try await ledger.submit(.make("p2", "bank", "alice", 100, .pending(expiresAt: nil))) == .created)
            #expect(try await ledger.submit(.void("v2", "p2")) == .created)
            #expect(try await ledger.submit(.void("v2", "p2")) == .exists)
            #expect(try await ledger.submit(.void("v2", "p1")).code == .transferExists)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 60))
            #expect(try await ledger.balances("bank") == Balances(debitsPosted: 60))
        }
    }

    /// TigerBeetle keeps transient failures (`id_already_failed`); this ledger keeps only what
    /// it made, so a refused transfer may be tried again under its id (the wallet's
    /// idempotency keys are what replays a failure to an HTTP client).
    @Test("A refused transfer's id is not kept: the same request can succeed later")
    func refusedIDCanBeUsedAgain() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let spend = TransferRequest.make("t1", "alice", "bob", 50)
            #expect(try await ledger.submit(spend).code == .insufficientFunds)
            #expect(try await ledger.transfer("t1") == nil)
            #expect(try await ledger.submit(spend).code == .insufficientFunds)

            try await ledger.fund("f1", from: "bank", to: "alice", 50)
            #expect(try await ledger.submit(spend) == .created)
            #expect(try await ledger.submit(spend) == .exists)
            // Refused for another reason first, then made with other fields: also allowed.
            #expect(try await ledger.submit(.make("t2", "alice", "ghost", 5)).code == .accountNotFound)
            #expect(try await ledger.submit(.make("t2", "bank", "bob", 7)) == .created)
            #expect(try await ledger.balances("bob") == Balances(creditsPosted: 57))
        }
    }

    @Test("Concurrent retries of one id create it exactly once")
    func concurrentRetries() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let request = TransferRequest.make("t1", "bank", "alice", 42)
            let results = try await withThrowingTaskGroup(of: TransferResult.self) { group in
                for _ in 0..<32 { group.addTask { try await ledger.submit(request) } }
                return try await group.reduce(into: [TransferResult]()) { $0.append($1) }
            }
            #expect(results.filter { $0 == .created }.count == 1)
            #expect(results.filter { $0 == .exists }.count == 31)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 42))
        }
    }
}
