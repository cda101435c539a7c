import CardTokens
import Foundation
import GRDB
import Ledger
import Testing
import VaultTestSupport
import Wallet

/// A wallet with a card on file, ready to top up.
private func walletWithCard(
    _ sandbox: WalletSandbox, currency: String = "EUR"
) async throws -> (WalletSummary, CardOnFile) {
    let wallet = try await sandbox.createWallet("alice", currency: currency)
    let card = try await sandbox.addCard(to: wallet.id)
    return (wallet, card)
}

/// The status column of every top-up attempt.
private func attemptStatuses(_ sandbox: WalletSandbox) async throws -> [String] {
    try await sandbox.ledger.pool.read { db in
        try String.fetchAll(db, sql: "SELECT status FROM wallet_top_ups ORDER BY created_at_ms, id")
    }
}

@Suite("Top-ups", .timeLimit(.minutes(10)))
struct TopUpTests {
    @Test("An approved top-up credits the wallet from the receivable, under the top-up's id as reference")
    func approved() async throws {
        try await withWallet(authorizer: { $0.script(.approve(authCode: "AUTH42")) }) { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            let topUp = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 2500, currency: "EUR",
                idempotency: sandbox.key("top-1"))
            #expect(topUp.status == .approved)
            #expect(topUp.id.hasPrefix("tu_"))
            #expect(topUp.walletID == wallet.id)
            #expect(topUp.cardID == card.id)
            #expect(topUp.amount == 2500)
            #expect(topUp.currency == "EUR")
            #expect(topUp.authCode == "AUTH42")
            #expect(topUp.declineCode == nil)
            #expect(topUp.acquirerReference == "acq-\(topUp.id)")
            #expect(topUp.createdAt == sandbox.clock.now)

            // What the authorizer saw: the card's token, the amount, the top-up id, the caller.
            let requests = sandbox.authorizer.requests
            #expect(requests.count == 1)
            #expect(requests.first?.reference == topUp.id)
            #expect(requests.first?.token == card.token)
            #expect(requests.first?.amount == 2500)
            #expect(requests.first?.currency == "EUR")
            #expect(requests.first?.requestedBy == "cred_test")

            #expect(try await sandbox.balance(wallet.id) == 2500)
            #expect(try await sandbox.balance(WalletService.receivableAccountID(Money.eur)) == -2500)
            #expect(try await sandbox.service.wallet(wallet.id).balances.posted == 2500)
            let transfer = try #require(try await sandbox.ledger.transfer(topUp.id))
            #expect(transfer.debitAccountID == "acquirer_receivable:EUR")
            #expect(transfer.creditAccountID == wallet.id)
            #expect(transfer.amount == 2500)
            #expect(try await attemptStatuses(sandbox) == ["approved"])
            #expect(try await sandbox.balances(wallet.id).pending == 0)
            let entries = try await sandbox.service.transactions(of: wallet.id).entries
            #expect(entries.map(\.id) == [topUp.id])
            #expect(entries.map(\.kind) == [.topUp])
            #expect(entries.map(\.amount) == [2500])
            try await sandbox.ledger.verifyInvariants()

            // Replayed: no second charge, no second credit.
            let replay = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 2500, currency: "EUR",
                idempotency: sandbox.key("top-1"))
            #expect(replay == topUp)
            #expect(sandbox.authorizer.callCount == 1)
            #expect(try await sandbox.balance(wallet.id) == 2500)
        }
    }

    @Test("After its outcome is purged, a top-up retried under its key re-sends its reference and books nothing twice")
    func retryAfterPurge() async throws {
        try await withWallet(authorizer: { $0.script(.approve(authCode: "AUTH42")) }) { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            let topUp = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 2500, currency: "EUR",
                idempotency: sandbox.key("top-1"))
            sandbox.clock.advance(by: 86_400)
            #expect(try await sandbox.service.purgeIdempotencyOutcomes(before: sandbox.clock.now) > 0)
            let retried = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 2500, currency: "EUR",
                idempotency: sandbox.key("top-1"))
            #expect(retried.id == topUp.id)
            #expect(retried.status == .approved)
            #expect(sandbox.authorizer.references == [topUp.id, topUp.id], "the acquirer sees the same reference")
            #expect(try await sandbox.balance(wallet.id) == 2500)
            #expect(try await attemptStatuses(sandbox) == ["approved"])
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("A declined top-up books nothing and is stored as declined with the decline code")
    func declined() async throws {
        try await withWallet(authorizer: { $0.script(.decline(code: "do_not_honor")) }) { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            let key = try sandbox.key("top-declined")
            let topUp = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 999, currency: "EUR", idempotency: key)
            #expect(topUp.status == .declined)
            #expect(topUp.declineCode == "do_not_honor")
            #expect(topUp.authCode == nil)
            #expect(sandbox.authorizer.references == [topUp.id])
            #expect(try await sandbox.balance(wallet.id) == 0)
            // Nothing moved and nothing is held, on either side.
            #expect(try await sandbox.balances(wallet.id) == Balances())
            #expect(try await sandbox.balances(WalletService.receivableAccountID(Money.eur)) == Balances())
            #expect(try await sandbox.service.transactions(of: wallet.id).entries.isEmpty)
            #expect(try await attemptStatuses(sandbox) == ["declined"])
            // The retry replays the decline without asking the acquirer again (which would now approve).
            let replay = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 999, currency: "EUR", idempotency: key)
            #expect(replay == topUp)
            #expect(sandbox.authorizer.callCount == 1)
            #expect(try await sandbox.balance(wallet.id) == 0)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test(
        "After a timeout or an unavailable acquirer nothing is booked or stored; the retry re-sends the same reference",
        arguments: [AuthorizationError.Code.acquirerTimeout, .acquirerUnavailable])
    func retryableFailure(code: AuthorizationError.Code) async throws {
        try await withWallet(authorizer: { $0.script(.fail(code), .fail(code), .approve(authCode: "LATE01")) }) {
            sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            let key = try sandbox.key("top-retry")
            let storedBefore = try await sandbox.count("wallet_idempotency")
            for _ in 0..<2 {
                let error = await walletErrorCode {
                    try await sandbox.service.topUp(
                        walletID: wallet.id, cardID: card.id, amount: 700, currency: "EUR", idempotency: key)
                }
                #expect(error?.rawValue == code.rawValue)
                #expect(try await sandbox.balance(wallet.id) == 0)
                #expect(try await sandbox.count("wallet_idempotency") == storedBefore)
                #expect(try await attemptStatuses(sandbox) == ["authorizing"])
            }
            // A different request under the key is refused: the first may have been charged.
            let other = await walletErrorCode {
                try await sandbox.service.topUp(
                    walletID: wallet.id, cardID: card.id, amount: 701, currency: "EUR", idempotency: key)
            }
            #expect(other == .idempotencyKeyReused)
            #expect(sandbox.authorizer.callCount == 2)

            let topUp = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 700, currency: "EUR", idempotency: key)
            #expect(topUp.status == .approved)
            #expect(topUp.authCode == "LATE01")
            let references = sandbox.authorizer.references
            #expect(references.count == 3)
            #expect(Set(references) == [topUp.id], "the retries must send the first attempt's reference")
            #expect(try await sandbox.balance(wallet.id) == 700)
            #expect(try await sandbox.balances(wallet.id).pending == 0)
            let entries = try await sandbox.service.transactions(of: wallet.id).entries
            #expect(entries.map(\.id) == [topUp.id])
            #expect(entries.map(\.amount) == [700])
            #expect(try await attemptStatuses(sandbox) == ["approved"])

            // Further retries replay without another charge.
            let replay = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 700, currency: "EUR", idempotency: key)
            #expect(replay == topUp)
            #expect(sandbox.authorizer.callCount == 3)
            #expect(try await sandbox.balance(wallet.id) == 700)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("The wallet error of a retryable acquirer failure says so")
    func retryableErrors() async throws {
        try await withWallet(authorizer: { $0.script(.fail(.acquirerTimeout)) }) { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            do {
                _ = try await sandbox.service.topUp(
                    walletID: wallet.id, cardID: card.id, amount: 1, currency: "EUR", idempotency: sandbox.key("t"))
                Issue.record("a timeout must throw")
            } catch let error as WalletError {
                #expect(error.code == .acquirerTimeout)
                #expect(error.isRetryable)
            }
        }
    }

    @Test("A token the vault deleted is token_not_found, stored, and replayed without calling again")
    func tokenDeleted() async throws {
        try await withWallet { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            sandbox.cards.delete(card.token)
            let key = try sandbox.key("top-gone")
            let first = await walletErrorCode {
                try await sandbox.service.topUp(
                    walletID: wallet.id, cardID: card.id, amount: 100, currency: "EUR", idempotency: key)
            }
            #expect(first == .tokenNotFound)
            #expect(sandbox.authorizer.callCount == 1)
            #expect(try await attemptStatuses(sandbox) == ["failed"])
            // Even if the token came back, the key's outcome is the failure.
            sandbox.cards.put(TestCards.visa(token: card.token))
            let again = await walletErrorCode {
                try await sandbox.service.topUp(
                    walletID: wallet.id, cardID: card.id, amount: 100, currency: "EUR", idempotency: key)
            }
            #expect(again == .tokenNotFound)
            #expect(sandbox.authorizer.callCount == 1)
            #expect(try await sandbox.balance(wallet.id) == 0)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("A token_not_found outcome and the attempt's status commit together or not at all")
    func tokenNotFoundIsAtomic() async throws {
        try await withWallet { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            sandbox.cards.delete(card.token)
            // Every write of an outcome fails (as a crash before the commit would leave it).
            try await sandbox.ledger.pool.write { db in
                try db.execute(
                    sql: """
                        CREATE TABLE doomed (x);
                        CREATE TRIGGER inject_failure BEFORE INSERT ON wallet_idempotency
                        BEGIN INSERT INTO doomed VALUES (1); END;
                        DROP TABLE doomed;
                        """)
            }
            let key = try sandbox.key("top-atomic")
            await #expect(throws: (any Error).self) {
                try await sandbox.service.topUp(
                    walletID: wallet.id, cardID: card.id, amount: 300, currency: "EUR", idempotency: key)
            }
            #expect(try await sandbox.count("wallet_idempotency") == 2)  // the wallet's and the card's
            #expect(try await attemptStatuses(sandbox) == ["authorizing"], "a status changed without its outcome")

            // Recovered: the retry re-sends the same reference and the attempt ends as it should.
            try await sandbox.ledger.pool.write { db in try db.execute(sql: "DROP TRIGGER inject_failure") }
            sandbox.cards.put(TestCards.visa(token: card.token))
            let topUp = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 300, currency: "EUR", idempotency: key)
            #expect(topUp.status == .approved)
            #expect(Set(sandbox.authorizer.references) == [topUp.id])
            #expect(try await sandbox.balance(wallet.id) == 300)
            #expect(try await attemptStatuses(sandbox) == ["approved"])
        }
    }

    @Test("Without an authorizer a top-up is acquirer_not_configured and stores nothing")
    func notConfigured() async throws {
        try await withWallet(withoutAuthorizer: true) { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            let stored = try await sandbox.count("wallet_idempotency")
            let code = await walletErrorCode {
                try await sandbox.service.topUp(
                    walletID: wallet.id, cardID: card.id, amount: 100, currency: "EUR", idempotency: sandbox.key("t"))
            }
            #expect(code == .acquirerNotConfigured)
            #expect(sandbox.authorizer.callCount == 0)
            #expect(try await sandbox.count("wallet_idempotency") == stored)
            #expect(try await sandbox.count("wallet_top_ups") == 0)
        }
    }

    @Test("An authorizer that reports itself not configured maps to acquirer_not_configured")
    func gatewayNotConfigured() async throws {
        try await withWallet(authorizer: { $0.script(.fail(.notConfigured), .fail(.invalidRequest)) }) {
            sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            let first = await walletErrorCode {
                try await sandbox.service.topUp(
                    walletID: wallet.id, cardID: card.id, amount: 100, currency: "EUR", idempotency: sandbox.key("a"))
            }
            #expect(first == .acquirerNotConfigured)
            let second = await walletErrorCode {
                try await sandbox.service.topUp(
                    walletID: wallet.id, cardID: card.id, amount: 100, currency: "EUR", idempotency: sandbox.key("b"))
            }
            #expect(second == .internalFailure)
            #expect(try await sandbox.balance(wallet.id) == 0)
        }
    }

    @Test("Refused requests reach neither the acquirer nor the ledger")
    func refusals() async throws {
        try await withWallet { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            let dollars = try await sandbox.createWallet("bob", currency: "USD")
            let otherEuros = try await sandbox.createWallet("carol")
            let othersCard = try await sandbox.addCard(to: otherEuros.id, TestCards.otherVisa())

            func code(
                wallet walletID: String = wallet.id, card cardID: String = card.id, amount: Int64 = 100,
                currency: String = "EUR"
            ) async -> WalletError.Code? {
                await walletErrorCode {
                    try await sandbox.service.topUp(
                        walletID: walletID, cardID: cardID, amount: amount, currency: currency,
                        idempotency: sandbox.freshKey())
                }
            }
            #expect(await code(currency: "USD") == .currencyMismatch)
            #expect(await code(currency: "XXX") == .unsupportedCurrency)
            #expect(await code(amount: 0) == .invalidAmount)
            #expect(await code(amount: -100) == .invalidAmount)
            #expect(await code(card: othersCard.id) == .cardNotFound)
            #expect(await code(card: "card_missing") == .cardNotFound)
            #expect(await code(wallet: "wal_missing") == .walletNotFound)
            #expect(await code(wallet: dollars.id, currency: "USD") == .cardNotFound)
            #expect(sandbox.authorizer.callCount == 0)
            #expect(try await sandbox.count("wallet_top_ups") == 0)
            #expect(try await sandbox.balances(wallet.id) == Balances())
        }
    }

    @Test("While the outcome is unknown the amount is held, not spendable; the outcome posts or voids it")
    func holdWhileUnknown() async throws {
        try await withWallet(authorizer: {
            $0.script(
                .fail(.acquirerTimeout), .approve(authCode: "A1"), .fail(.acquirerUnavailable), .decline(code: "x"))
        }) { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            let other = try await sandbox.createWallet("bob")
            let receivable = WalletService.receivableAccountID(Money.eur)
            func topUp(_ key: String, _ amount: Int64) async -> WalletError.Code? {
                do {
                    _ = try await sandbox.service.topUp(
                        walletID: wallet.id, cardID: card.id, amount: amount, currency: "EUR",
                        idempotency: sandbox.key(key))
                    return nil
                } catch {
                    return (error as? WalletError)?.code
                }
            }

            #expect(await topUp("approve-later", 800) == .acquirerTimeout)
            #expect(try await sandbox.balances(wallet.id) == Balances(creditsPending: 800))
            #expect(try await sandbox.balances(receivable) == Balances(debitsPending: 800))
            #expect(try await sandbox.balances(wallet.id).available == 0)
            // Held money cannot be spent.
            let spend = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: wallet.id, to: other.id, amount: 1, currency: "EUR", idempotency: sandbox.freshKey())
            }
            #expect(spend == .insufficientFunds)
            #expect(try await sandbox.service.transactions(of: wallet.id).entries.isEmpty)
            try await sandbox.ledger.verifyInvariants()

            #expect(await topUp("approve-later", 800) == nil)
            #expect(try await sandbox.balances(wallet.id) == Balances(creditsPosted: 800))
            #expect(try await sandbox.balances(receivable) == Balances(debitsPosted: 800))

            #expect(await topUp("decline-later", 300) == .acquirerUnavailable)
            #expect(try await sandbox.balances(wallet.id) == Balances(creditsPosted: 800, creditsPending: 300))
            #expect(await topUp("decline-later", 300) == nil)
            #expect(try await sandbox.balances(wallet.id) == Balances(creditsPosted: 800))
            #expect(try await sandbox.balances(receivable) == Balances(debitsPosted: 800))
            #expect(try await sandbox.service.transactions(of: wallet.id).entries.map(\.amount) == [800])
            #expect(sandbox.authorizer.callCount == 4)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("A top-up that would overflow the wallet's balance is amount_overflow before any charge")
    func overflowBeforeCharge() async throws {
        try await withWallet { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            _ = try await sandbox.ledger.createAccount(id: "test_bank", currency: Money.eur)
            let funded = try await sandbox.ledger.createTransfers([
                TransferRequest(
                    id: "big", debitAccountID: "test_bank", creditAccountID: wallet.id, amount: Int64.max - 5)
            ])
            try #require(funded == [.created])
            let key = try sandbox.key("top-overflow")
            for _ in 0..<2 {
                let code = await walletErrorCode {
                    try await sandbox.service.topUp(
                        walletID: wallet.id, cardID: card.id, amount: 10, currency: "EUR", idempotency: key)
                }
                #expect(code == .amountOverflow)
            }
            #expect(
                sandbox.authorizer.callCount == 0, "the card must not be charged for a credit that cannot be booked")
            #expect(try await sandbox.balances(wallet.id) == Balances(creditsPosted: Int64.max - 5))
            #expect(try await sandbox.count("wallet_top_ups") == 0)
            // A top-up that fits still works.
            let topUp = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 5, currency: "EUR", idempotency: sandbox.freshKey())
            #expect(topUp.status == .approved)
            #expect(try await sandbox.balance(wallet.id) == Int64.max)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("Concurrent duplicates of one top-up charge once and credit once")
    func concurrentDuplicates() async throws {
        let gate = Gate()
        try await withWallet(authorizer: { $0.hold(until: gate) }) { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            let key = try sandbox.key("top-dup")
            async let first = sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 400, currency: "EUR", idempotency: key)
            // The first call is inside the authorizer: every duplicate now is in use.
            try await gate.waitForArrivals(1)
            let duplicates = try await withThrowingTaskGroup(of: WalletError.Code?.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        await walletErrorCode {
                            try await sandbox.service.topUp(
                                walletID: wallet.id, cardID: card.id, amount: 400, currency: "EUR", idempotency: key)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(duplicates.allSatisfy { $0 == .idempotencyKeyInUse }, "\(duplicates)")
            gate.open()
            let topUp = try await first
            #expect(topUp.status == .approved)
            #expect(sandbox.authorizer.callCount == 1)
            #expect(try await sandbox.balance(wallet.id) == 400)
            let replay = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 400, currency: "EUR", idempotency: key)
            #expect(replay == topUp)
            #expect(sandbox.authorizer.callCount == 1)
        }
    }

    @Test("Many top-ups under their own keys each credit once; the ledger stays balanced")
    func manyTopUps() async throws {
        try await withWallet { sandbox async throws in
            let (wallet, card) = try await walletWithCard(sandbox)
            sandbox.authorizer.setDefault(.approve(authCode: "OK"))
            var generator = SeededGenerator(seed: 0x70_9)
            var expected: Int64 = 0
            var declinedIDs = Set<String>()
            try await withThrowingTaskGroup(of: TopUp.self) { group in
                for index in 0..<30 {
                    let amount = Int64.random(in: 1...10_000, using: &generator)
                    // Four declines, answered to whichever calls come first.
                    if index % 7 == 3 {
                        sandbox.authorizer.script(.decline(code: "insufficient_funds"))
                    }
                    group.addTask {
                        try await sandbox.service.topUp(
                            walletID: wallet.id, cardID: card.id, amount: amount, currency: "EUR",
                            idempotency: sandbox.key("many-\(index)"))
                    }
                }
                for try await topUp in group {
                    if topUp.status == .approved {
                        expected += topUp.amount
                    } else {
                        declinedIDs.insert(topUp.id)
                    }
                }
            }
            #expect(declinedIDs.count == 4)
            #expect(try await sandbox.balance(wallet.id) == expected)
            #expect(try await sandbox.balance(WalletService.receivableAccountID(Money.eur)) == -expected)
            #expect(try await sandbox.balances(wallet.id).pending == 0)
            let entries = try await sandbox.service.transactions(of: wallet.id).entries
            #expect(entries.count == 30 - 4)
            #expect(entries.allSatisfy { $0.kind == .topUp && $0.amount > 0 })
            #expect(entries.map(\.amount).reduce(0, +) == expected)
            #expect(Set(sandbox.authorizer.references).count == 30)
            try await sandbox.ledger.verifyInvariants()
        }
    }
}
