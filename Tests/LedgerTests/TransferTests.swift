import Ledger
import Testing

@Suite("Single-phase transfers")
struct TransferTests {
    /// A bank that may go negative, a wallet that may not, and a merchant.
    private func setUp(_ ledger: SQLiteLedger) async throws {
        _ = try await ledger.createAccount(id: "bank", currency: Money.eur)
        _ = try await ledger.createAccount(id: "alice", currency: Money.eur, flags: .debitsMustNotExceedCredits)
        _ = try await ledger.createAccount(id: "merchant", currency: Money.eur)
    }

    @Test("A transfer moves posted and available balances on both sides")
    func balancesMove() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            #expect(try await ledger.submit(.make("t1", "bank", "alice", 1_000)) == .created)

            let bank = try await ledger.balances("bank")
            #expect(bank == Balances(debitsPosted: 1_000))
            #expect(bank.posted == -1_000)
            #expect(bank.available == -1_000)
            #expect(bank.pending == 0)

            let alice = try await ledger.balances("alice")
            #expect(alice == Balances(creditsPosted: 1_000))
            #expect(alice.posted == 1_000)
            #expect(alice.available == 1_000)

            #expect(try await ledger.submit(.make("t2", "alice", "merchant", 300)) == .created)
            let after = try await ledger.balances("alice")
            #expect(after == Balances(debitsPosted: 300, creditsPosted: 1_000))
            #expect(after.posted == 700)
            #expect(after.available == 700)
            #expect(try await ledger.balances("merchant") == Balances(creditsPosted: 300))

            let stored = try #require(try await ledger.transfer("t2"))
            #expect(stored.debitAccountID == "alice")
            #expect(stored.creditAccountID == "merchant")
            #expect(stored.amount == 300)
            #expect(stored.currency == Money.eur)
            #expect(stored.kind == "single")
            #expect(stored.state == nil)
            #expect(stored.pendingID == nil)
            try await ledger.verifyInvariants()
        }
    }

    @Test("Zero and negative amounts are refused", arguments: [0, -1, Int64.min])
    func invalidAmount(amount: Int64) async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            #expect(try await ledger.submit(.make("t1", "bank", "alice", amount)).code == .invalidAmount)
            #expect(
                try await ledger.submit(.make("p1", "bank", "alice", amount, .pending(expiresAt: nil))).code
                    == .invalidAmount)
            #expect(try await ledger.balances("bank") == Balances())
            #expect(try await ledger.balances("alice") == Balances())
            #expect(try await ledger.transfer("t1") == nil)
        }
    }

    @Test("Refusals: same account, missing account, currency mismatch, bad id")
    func refusals() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            _ = try await ledger.createAccount(id: "usd-bank", currency: Money.usd)

            #expect(try await ledger.submit(.make("t1", "bank", "bank", 10)).code == .sameAccount)
            #expect(try await ledger.submit(.make("t2", "ghost", "alice", 10)).code == .accountNotFound)
            #expect(try await ledger.submit(.make("t3", "bank", "ghost", 10)).code == .accountNotFound)
            #expect(try await ledger.submit(.make("t4", "usd-bank", "alice", 10)).code == .currencyMismatch)
            #expect(try await ledger.submit(.make("t5", "bank", "usd-bank", 10)).code == .currencyMismatch)
            #expect(try await ledger.submit(.make("", "bank", "alice", 10)).code == .invalidID)
            #expect(try await ledger.submit(.make("bad id", "bank", "alice", 10)).code == .invalidID)

            for id in ["bank", "alice", "merchant", "usd-bank"] {
                #expect(try await ledger.balances(id) == Balances())
            }
            for id in ["t1", "t2", "t3", "t4", "t5"] {
                #expect(try await ledger.transfer(id) == nil)
            }
        }
    }

    @Test("A credit that would overflow an account balance is refused and changes nothing")
    func overflow() async throws {
        try await withLedger { ledger, _ in
            _ = try await ledger.createAccount(id: "source-1", currency: Money.eur)
            _ = try await ledger.createAccount(id: "source-2", currency: Money.eur)
            _ = try await ledger.createAccount(id: "whale", currency: Money.eur)
            try await ledger.fund("t1", from: "source-1", to: "whale", Int64.max - 10)

            #expect(try await ledger.submit(.make("t2", "source-2", "whale", 11)).code == .overflow)
            #expect(try await ledger.balances("whale") == Balances(creditsPosted: Int64.max - 10))
            #expect(try await ledger.balances("source-2") == Balances())
            #expect(try await ledger.transfer("t2") == nil)

            // Up to Int64.max exactly is fine; then posted plus pending may not exceed it either.
            #expect(try await ledger.submit(.make("t3", "source-2", "whale", 10)) == .created)
            #expect(try await ledger.submit(.make("t4", "source-2", "whale", 1)).code == .overflow)
            #expect(
                try await ledger.submit(.make("t5", "source-2", "whale", 1, .pending(expiresAt: nil))).code == .overflow
            )
            #expect(try await ledger.balances("whale") == Balances(creditsPosted: Int64.max))
            #expect(try await ledger.balances("whale").available == Int64.max)

            // The debit side overflows too, posted alone or posted plus pending (TigerBeetle's
            // `overflows_debits`): otherwise `available` could not be represented.
            #expect(try await ledger.submit(.make("t6", "source-1", "source-2", 11)).code == .overflow)
            #expect(
                try await ledger.submit(.make("t7", "source-1", "source-2", 20, .pending(expiresAt: nil))).code
                    == .overflow)
            #expect(try await ledger.balances("source-1") == Balances(debitsPosted: Int64.max - 10))
            #expect(try await ledger.balances("source-1").available == -(Int64.max - 10))
            try await ledger.verifyInvariants()
        }
    }

    @Test("Balances whose total exceeds Int64 across accounts are still checked, not a database error")
    func largeTotals() async throws {
        try await withLedger { ledger, _ in
            for id in ["source-1", "source-2", "whale-1", "whale-2"] {
                _ = try await ledger.createAccount(id: id, currency: Money.eur)
            }
            let half = Int64.max / 2 + 1
            try await ledger.fund("t1", from: "source-1", to: "whale-1", half)
            // Each balance fits in Int64; only the sum over the currency does not.
            #expect(try await ledger.submit(.make("t2", "source-2", "whale-2", half)) == .created)
            #expect(
                try await ledger.submit(.make("t3", "source-2", "whale-1", 1, .pending(expiresAt: nil))) == .created)
            try await ledger.verifyInvariants()
            #expect(try await ledger.balances("whale-2") == Balances(creditsPosted: half))
        }
    }

    @Test("A no-overdraft account cannot be debited beyond its posted credits")
    func noOverdraft() async throws {
        try await withLedger { ledger, _ in
            try await setUp(ledger)
            #expect(try await ledger.submit(.make("t0", "alice", "merchant", 1)).code == .insufficientFunds)
            try await ledger.fund("t1", from: "bank", to: "alice", 1_000)

            let result = try await ledger.submit(.make("t2", "alice", "merchant", 1_001))
            #expect(result.code == .insufficientFunds)
            #expect(try await ledger.transfer("t2") == nil)
            #expect(try await ledger.balances("alice") == Balances(creditsPosted: 1_000))
            #expect(try await ledger.balances("merchant") == Balances())

            // Exactly the balance is allowed; then nothing more.
            #expect(try await ledger.submit(.make("t3", "alice", "merchant", 1_000)) == .created)
            #expect(try await ledger.balances("alice").available == 0)
            #expect(try await ledger.submit(.make("t4", "alice", "merchant", 1)).code == .insufficientFunds)

            // The unflagged bank may go as negative as it likes.
            #expect(try await ledger.submit(.make("t5", "bank", "merchant", 1_000_000)) == .created)
            #expect(try await ledger.balances("bank").posted == -1_001_000)
            try await ledger.verifyInvariants()
        }
    }

    @Test("An account that must not be credited beyond its debits refuses such credits")
    func creditsMustNotExceedDebits() async throws {
        try await withLedger { ledger, _ in
            _ = try await ledger.createAccount(
                id: "receivable", currency: Money.eur, flags: .creditsMustNotExceedDebits)
            _ = try await ledger.createAccount(id: "customer", currency: Money.eur)
            #expect(try await ledger.submit(.make("t1", "customer", "receivable", 1)).code == .exceedsDebits)
            try await ledger.fund("t2", from: "receivable", to: "customer", 100)
            #expect(try await ledger.submit(.make("t3", "customer", "receivable", 101)).code == .exceedsDebits)
            #expect(try await ledger.submit(.make("t4", "customer", "receivable", 100)) == .created)
            #expect(try await ledger.balances("receivable") == Balances(debitsPosted: 100, creditsPosted: 100))
        }
    }
}
