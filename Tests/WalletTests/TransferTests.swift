import Foundation
import Ledger
import Testing
import VaultTestSupport
import Wallet

@Suite("Transfers", .timeLimit(.minutes(10)))
struct TransferTests {
    @Test("A transfer moves money between two wallets of the same currency")
    func moves() async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            try await sandbox.fund(alice.id, 1000)
            sandbox.clock.advance(by: 3)
            let transfer = try await sandbox.service.transfer(
                from: alice.id, to: bob.id, amount: 1000, currency: "EUR", idempotency: sandbox.key("pay"))
            #expect(transfer.id.hasPrefix("tr_"))
            #expect(transfer.fromWallet == alice.id)
            #expect(transfer.toWallet == bob.id)
            #expect(transfer.amount == 1000)
            #expect(transfer.currency == "EUR")
            #expect(transfer.createdAt == sandbox.clock.now)
            #expect(try await sandbox.balance(alice.id) == 0)
            #expect(try await sandbox.balance(bob.id) == 1000)
            let booked = try #require(try await sandbox.ledger.transfer(transfer.id))
            #expect(booked.debitAccountID == alice.id)
            #expect(booked.creditAccountID == bob.id)
            #expect(booked.amount == 1000)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("More than the balance is insufficient_funds and moves nothing")
    func insufficient() async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            try await sandbox.fund(alice.id, 999)
            let code = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: alice.id, to: bob.id, amount: 1000, currency: "EUR", idempotency: sandbox.freshKey())
            }
            #expect(code == .insufficientFunds)
            let empty = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: bob.id, to: alice.id, amount: 1, currency: "EUR", idempotency: sandbox.freshKey())
            }
            #expect(empty == .insufficientFunds)
            #expect(try await sandbox.balance(alice.id) == 999)
            #expect(try await sandbox.balance(bob.id) == 0)
            #expect(try await sandbox.ledger.transfers(of: bob.id).isEmpty)
        }
    }

    @Test("Refusals: same wallet, currency mismatch, unknown wallet, bad amount, unknown currency")
    func refusals() async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            let dollars = try await sandbox.createWallet("dan", currency: "USD")
            let moreDollars = try await sandbox.createWallet("dora", currency: "USD")
            try await sandbox.fund(alice.id, 1000)
            try await sandbox.fund(dollars.id, 1000, currency: "USD")

            func code(
                _ from: String, _ to: String, _ amount: Int64 = 10, _ currency: String = "EUR"
            ) async
                -> WalletError.Code?
            {
                await walletErrorCode {
                    try await sandbox.service.transfer(
                        from: from, to: to, amount: amount, currency: currency, idempotency: sandbox.freshKey())
                }
            }
            #expect(await code(alice.id, alice.id) == .sameWallet)
            #expect(await code(alice.id, dollars.id) == .currencyMismatch)
            #expect(await code(dollars.id, alice.id) == .currencyMismatch)
            #expect(await code(alice.id, dollars.id, 10, "USD") == .currencyMismatch)
            #expect(await code(dollars.id, moreDollars.id, 10, "EUR") == .currencyMismatch)
            #expect(await code(alice.id, bob.id, 10, "USD") == .currencyMismatch)
            #expect(await code(alice.id, "wal_missing") == .walletNotFound)
            #expect(await code("wal_missing", alice.id) == .walletNotFound)
            // The receivable is a ledger account but not a wallet.
            #expect(await code("acquirer_receivable:EUR", bob.id) == .walletNotFound)
            #expect(await code(alice.id, "acquirer_receivable:EUR") == .walletNotFound)
            #expect(await code(alice.id, bob.id, 0) == .invalidAmount)
            #expect(await code(alice.id, bob.id, -5) == .invalidAmount)
            #expect(await code(alice.id, bob.id, 10, "XXX") == .unsupportedCurrency)
            #expect(try await sandbox.balance(alice.id) == 1000)
            #expect(try await sandbox.balance(bob.id) == 0)
            #expect(try await sandbox.balance(dollars.id) == 1000)
            #expect(try await sandbox.balance(moreDollars.id) == 0)
            #expect(try await sandbox.count("ledger_transfers") == 2)
            // The same currency across USD wallets works.
            _ = try await sandbox.service.transfer(
                from: dollars.id, to: moreDollars.id, amount: 10, currency: "USD", idempotency: sandbox.freshKey())
            #expect(try await sandbox.balance(moreDollars.id) == 10)
        }
    }

    @Test("A credit that would overflow the balance is amount_overflow")
    func overflow() async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            try await sandbox.fund(alice.id, 10)
            // Bob's near-maximal balance comes from an account of its own (the receivable's
            // debits would overflow first otherwise).
            _ = try await sandbox.ledger.createAccount(id: "test_bank", currency: Money.eur)
            let funded = try await sandbox.ledger.createTransfers([
                TransferRequest(id: "big", debitAccountID: "test_bank", creditAccountID: bob.id, amount: Int64.max - 5)
            ])
            try #require(funded == [.created])
            let code = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: alice.id, to: bob.id, amount: 10, currency: "EUR", idempotency: sandbox.freshKey())
            }
            #expect(code == .amountOverflow)
            #expect(try await sandbox.balance(alice.id) == 10)
            #expect(try await sandbox.balance(bob.id) == Int64.max - 5)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("Concurrent random transfers never overdraw a wallet and add up to the balances")
    func concurrentRandom() async throws {
        try await withWallet { sandbox async throws in
            // The moves are seeded (WALLET_SEED replays them); their interleaving is not.
            let seed =
                ProcessInfo.processInfo.environment["WALLET_SEED"].flatMap(UInt64.init)
                ?? UInt64.random(in: 0...UInt64.max)
            var generator = SeededGenerator(seed: seed)
            var wallets = [String]()
            var initial = [String: Int64]()
            for index in 0..<4 {
                let wallet = try await sandbox.createWallet("w\(index)")
                let amount = Int64.random(in: 0...2_000, using: &generator)
                if amount > 0 { try await sandbox.fund(wallet.id, amount) }
                wallets.append(wallet.id)
                initial[wallet.id] = amount
            }
            struct Move: Sendable {
                var from: String
                var to: String
                var amount: Int64
            }
            var moves = [Move]()
            for _ in 0..<200 {
                let from = wallets.randomElement(using: &generator)!
                let to = wallets.filter { $0 != from }.randomElement(using: &generator)!
                moves.append(Move(from: from, to: to, amount: Int64.random(in: 1...600, using: &generator)))
            }
            let outcomes = try await withThrowingTaskGroup(of: (Move, WalletTransfer?).self) { group in
                for (index, move) in moves.enumerated() {
                    group.addTask {
                        do {
                            let transfer = try await sandbox.service.transfer(
                                from: move.from, to: move.to, amount: move.amount, currency: "EUR",
                                idempotency: sandbox.key("move-\(index)"))
                            return (move, transfer)
                        } catch let error as WalletError where error.code == .insufficientFunds {
                            return (move, nil)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            var expected = initial
            var succeeded = 0
            for (move, transfer) in outcomes {
                guard let transfer else { continue }
                #expect(transfer.amount == move.amount && transfer.fromWallet == move.from)
                expected[move.from]! -= move.amount
                expected[move.to]! += move.amount
                succeeded += 1
            }
            for wallet in wallets {
                let balances = try #require(try await sandbox.ledger.account(wallet)).balances
                #expect(balances.posted == expected[wallet], "replay with WALLET_SEED=\(seed)")
                #expect(balances.posted >= 0, "replay with WALLET_SEED=\(seed)")
                #expect(balances.debitsPosted <= balances.creditsPosted, "replay with WALLET_SEED=\(seed)")
            }
            #expect(succeeded > 0, "replay with WALLET_SEED=\(seed)")
            let total = initial.values.reduce(0, +)
            #expect(try await sandbox.balance(WalletService.receivableAccountID(Money.eur)) == -total)
            try await sandbox.ledger.verifyInvariants()
        }
    }
}
