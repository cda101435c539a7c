import Ledger
import Testing

@Suite("Linked transfers", .timeLimit(.minutes(10)))
struct LinkedTests {
    /// Alice (no overdraft) holds 100; bob and the bank may go negative.
    private func setUp(_ ledger: SQLiteLedger) async throws {
        _ = try await ledger.createAccount(id: "bank", currency: Money.eur)
        _ = try await ledger.createAccount(id: "alice", currency: Money.eur, flags: .debitsMustNotExceedCredits)
        _ = try await ledger.createAccount(id: "bob", currency: Money.eur)
        try await ledger.fund("fund", from: "bank", to: "alice", 100)
    }

    private func snapshot(_ ledger: SQLiteLedger) async throws -> [Balances] {
        var balances = [Balances]()
        for id in ["bank", "alice", "bob"] { balances.append(try await ledger.balances(id)) }
        return balances
    }

    @Test("A failing member fails the whole chain: culprit with its code, the others as linked")
    func chainFailsTogether() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let before = try await snapshot(ledger)
            let results = try await ledger.createTransfers([
                .make("a", "bank", "bob", 10, linked: true),
                .make("b", "alice", "bob", 101, linked: true),
                .make("c", "bob", "bank", 5),
            ])
            #expect(results.map(\.code) == [.linkedTransferFailed, .insufficientFunds, .linkedTransferFailed])
            #expect(try await snapshot(ledger) == before)
            for id in ["a", "b", "c"] { #expect(try await ledger.transfer(id) == nil) }

            // The same chain with a valid middle commits in full (fresh ids: whether a failed id
            // may be reused is not specified here).
            let retry = try await ledger.createTransfers([
                .make("a2", "bank", "bob", 10, linked: true),
                .make("b2", "alice", "bob", 100, linked: true),
                .make("c2", "bob", "bank", 5),
            ])
            #expect(retry == [.created, .created, .created])
            #expect(try await ledger.balances("bob") == Balances(debitsPosted: 5, creditsPosted: 110))
            try await ledger.verifyInvariants()
        }
    }

    @Test("A chain whose first member fails rolls back nothing else and fails the rest")
    func chainFailsAtFirst() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let results = try await ledger.createTransfers([
                .make("a", "ghost", "bob", 10, linked: true),
                .make("b", "bank", "bob", 10),
            ])
            #expect(results.map(\.code) == [.accountNotFound, .linkedTransferFailed])
            #expect(try await ledger.balances("bob") == Balances())
        }
    }

    @Test("An unlinked failure in a batch fails alone")
    func unlinkedFailureIsolated() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let results = try await ledger.createTransfers([
                .make("a", "bank", "bob", 10),
                .make("b", "alice", "bob", 101),
                .make("c", "bob", "bank", 5),
            ])
            #expect(results.map(\.code) == [nil, .insufficientFunds, nil])
            #expect(results[0] == .created)
            #expect(results[2] == .created)
            #expect(try await ledger.balances("bob") == Balances(debitsPosted: 5, creditsPosted: 10))
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 100))
            #expect(try await ledger.transfer("b") == nil)
        }
    }

    @Test("Chains and single transfers in one call succeed or fail independently")
    func mixedBatch() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let results = try await ledger.createTransfers([
                .make("a1", "bank", "bob", 1, linked: true),
                .make("a2", "bob", "bank", 1),
                .make("b1", "bank", "bob", 2, linked: true),
                .make("b2", "bob", "bob", 2),
                .make("c", "bank", "bob", 4),
            ])
            #expect(results.map(\.code) == [nil, nil, .linkedTransferFailed, .sameAccount, nil])
            #expect(try await ledger.balances("bob") == Balances(debitsPosted: 1, creditsPosted: 5))
        }
    }

    @Test("The last transfer of a call may not be linked: the open chain fails")
    func openChain() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let before = try await snapshot(ledger)
            let results = try await ledger.createTransfers([
                .make("a", "bank", "bob", 10, linked: true),
                .make("b", "bank", "bob", 20, linked: true),
            ])
            #expect(results.map(\.code) == [.linkedTransferFailed, .linkedTransferFailed])
            #expect(try await snapshot(ledger) == before)

            let alone = try await ledger.createTransfers([.make("c", "bank", "bob", 10, linked: true)])
            #expect(alone.map(\.code) == [.linkedTransferFailed])

            // Only the open chain fails; what precedes it commits.
            let tail = try await ledger.createTransfers([
                .make("d", "bank", "bob", 1),
                .make("e", "bank", "bob", 2, linked: true),
            ])
            #expect(tail.map(\.code) == [nil, .linkedTransferFailed])
            #expect(try await ledger.balances("bob") == Balances(creditsPosted: 1))
            for id in ["a", "b", "c", "e"] { #expect(try await ledger.transfer(id) == nil) }
        }
    }

    @Test("A chain does not continue into another caller's requests")
    func chainsStayInTheirCall() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            // Many concurrent callers share commits; each open chain fails on its own.
            let results = try await withThrowingTaskGroup(of: (Int, [TransferResult]).self) { group in
                for index in 0..<20 {
                    group.addTask {
                        let requests: [TransferRequest] =
                            index.isMultiple(of: 2)
                            ? [.make("open-\(index)", "bank", "bob", 1, linked: true)]
                            : [.make("single-\(index)", "bank", "bob", 1)]
                        return (index, try await ledger.createTransfers(requests))
                    }
                }
                return try await group.reduce(into: [Int: [TransferResult]]()) { $0[$1.0] = $1.1 }
            }
            for (index, result) in results {
                #expect(result.map(\.code) == [index.isMultiple(of: 2) ? .linkedTransferFailed : nil])
            }
            #expect(try await ledger.balances("bob") == Balances(creditsPosted: 10))
        }
    }

    @Test("A pending transfer and its post may be linked in one call")
    func pendingAndPostLinked() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            let results = try await ledger.createTransfers([
                .make("p", "alice", "bob", 80, .pending(expiresAt: nil), linked: true),
                TransferRequest(
                    id: "c", debitAccountID: "", creditAccountID: "", amount: 50, kind: .post(pendingID: "p"),
                    linked: true),
                .make("fee", "alice", "bank", 60),
            ])
            // The fee would overdraw alice (100 - 50 posted = 50 left): the whole chain goes.
            #expect(results.map(\.code) == [.linkedTransferFailed, .linkedTransferFailed, .insufficientFunds])
            #expect(try await ledger.transfer("p") == nil)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 100))

            let retry = try await ledger.createTransfers([
                .make("p2", "alice", "bob", 80, .pending(expiresAt: nil), linked: true),
                TransferRequest(
                    id: "c2", debitAccountID: "", creditAccountID: "", amount: 50, kind: .post(pendingID: "p2"),
                    linked: true),
                .make("fee2", "alice", "bank", 50),
            ])
            #expect(retry == [.created, .created, .created])
            #expect(try await ledger.balances("alice") == Balances(debitsPosted: 100, creditsPosted: 100))
            #expect(try await ledger.transfer("p2")?.state == .posted)
        }
    }
}
