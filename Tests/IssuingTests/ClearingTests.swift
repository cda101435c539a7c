import CardTokens
import Foundation
import GRDB
import Issuing
import Ledger
import Testing
import VaultTestSupport
import Wallet

private let shop = Merchant(id: "m-1", name: "Corner shop", mcc: "5411", country: "DE")

private func reference() -> String { "net-\(UUID().uuidString)" }

/// A funded wallet with an active card and one approved authorization of `amount`.
private func authorized(
    _ sandbox: CardSandbox, amount: Int64, funds: Int64 = 100_000, controls: SpendControls = .init()
) async throws -> (wallet: WalletSummary, card: VirtualCard, authorization: CardAuthorization) {
    let wallet = try await sandbox.wallet()
    try await sandbox.fund(wallet.id, funds)
    let card = try await sandbox.activeCard(on: wallet.id, controls: controls)
    let authorization = try await sandbox.network.authorize(
        CardAuthorizationRequest(
            networkReference: reference(), token: card.token, amount: amount, currency: "EUR", merchant: shop))
    try #require(authorization.approved)
    return (wallet, card, authorization)
}

private extension CardSandbox {
    func balances(_ account: String) async throws -> Balances {
        try #require(try await ledger.account(account)).balances
    }
}

@Suite("Clearings, reversals, refunds and expiries", .timeLimit(.minutes(3)))
struct ClearingTests {
    @Test("Several partial clearings book the purchase; more than authorized is refused; the statement shows it")
    func partialClearings() async throws {
        try await withCards { sandbox in
            let (wallet, card, authorization) = try await authorized(sandbox, amount: 1_000)
            let first = try await sandbox.network.clear(
                ClearingRequest(networkReference: "clr-1", authorizationID: authorization.id, amount: 300))
            #expect(first.kind == .clearing && first.amount == 300)
            var balances = try await sandbox.balances(wallet.id)
            #expect(balances.posted == 99_700)
            #expect(balances.available == 99_000, "300 booked, 700 still held")
            let tooMuch = await walletCode {
                try await sandbox.network.clear(
                    ClearingRequest(networkReference: reference(), authorizationID: authorization.id, amount: 701))
            }
            #expect(tooMuch == .amountExceedsAuthorization)
            _ = try await sandbox.network.clear(
                ClearingRequest(networkReference: reference(), authorizationID: authorization.id, amount: 700))
            balances = try await sandbox.balances(wallet.id)
            #expect(balances.posted == 99_000 && balances.available == 99_000 && balances.pending == 0)
            let released = await walletCode {
                try await sandbox.network.clear(
                    ClearingRequest(networkReference: reference(), authorizationID: authorization.id, amount: 1))
            }
            #expect(released == .authorizationReleased)
            // A retry of the first clearing replays it; the same reference with another amount is refused.
            #expect(
                try await sandbox.network.clear(
                    ClearingRequest(networkReference: "clr-1", authorizationID: authorization.id, amount: 300)) == first
            )
            let reused = await walletCode {
                try await sandbox.network.clear(
                    ClearingRequest(networkReference: "clr-1", authorizationID: authorization.id, amount: 301))
            }
            #expect(reused == .networkReferenceReused)

            let statement = try await sandbox.wallets.transactions(of: wallet.id)
            #expect(statement.entries.filter { $0.kind == .cardPurchase }.map(\.amount) == [-300, -700])
            #expect(statement.entries.allSatisfy { $0.kind != .cardPurchase || $0.counterpartyWallet == nil })
            let history = try await sandbox.network.transactions(of: card.id)
            #expect(history.map(\.kind) == [.authorization, .clearing, .clearing])
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test(
        "A reversal gives back the hold and the card's spending; a refund credits the wallet, never more than was cleared"
    )
    func reversalAndRefund() async throws {
        try await withCards { sandbox in
            let (wallet, card, authorization) = try await authorized(
                sandbox, amount: 1_000, controls: SpendControls(limits: SpendLimits(daily: 1_000)))
            #expect(try await sandbox.cards.card(card.id).spent.lifetime == 1_000)
            let partial = try await sandbox.network.reverse(
                ReversalRequest(networkReference: reference(), authorizationID: authorization.id, amount: 400))
            #expect(partial.amount == 400)
            #expect(try await sandbox.cards.card(card.id).spent.current(at: sandbox.clock.now).daily == 600)
            #expect(try await sandbox.balances(wallet.id).available == 99_400)
            let rest = try await sandbox.network.reverse(
                ReversalRequest(networkReference: reference(), authorizationID: authorization.id))
            #expect(rest.amount == 600)
            #expect(try await sandbox.balances(wallet.id) == Balances(creditsPosted: 100_000))
            #expect(try await sandbox.cards.card(card.id).spent.lifetime == 0)

            // Nothing was cleared: nothing can be refunded (the network account is never debited for
            // money no purchase put there).
            let nothingCleared = await walletCode {
                try await sandbox.network.refund(
                    RefundRequest(
                        networkReference: reference(), cardID: card.id, authorizationID: authorization.id,
                        amount: 1, currency: "EUR", merchant: shop))
            }
            #expect(nothingCleared == .amountExceedsAuthorization)

            let purchase = try await sandbox.network.authorize(
                CardAuthorizationRequest(
                    networkReference: reference(), token: card.token, amount: 400, currency: "EUR", merchant: shop))
            _ = try await sandbox.network.clear(
                ClearingRequest(networkReference: reference(), authorizationID: purchase.id, amount: 300))
            let refund = try await sandbox.network.refund(
                RefundRequest(
                    networkReference: reference(), cardID: card.id, authorizationID: purchase.id, amount: 250,
                    currency: "EUR", merchant: shop))
            #expect(refund.kind == .refund && refund.authorizationID == purchase.id)
            #expect(try await sandbox.balances(wallet.id).posted == 100_000 - 300 + 250)
            let statement = try await sandbox.wallets.transactions(of: wallet.id)
            #expect(statement.entries.last?.kind == .cardRefund && statement.entries.last?.amount == 250)
            // 300 cleared, 250 refunded: 51 more is too much, 50 fits.
            let tooMuch = await walletCode {
                try await sandbox.network.refund(
                    RefundRequest(
                        networkReference: reference(), cardID: card.id, authorizationID: purchase.id, amount: 51,
                        currency: "EUR", merchant: shop))
            }
            #expect(tooMuch == .amountExceedsAuthorization)
            _ = try await sandbox.network.refund(
                RefundRequest(
                    networkReference: reference(), cardID: card.id, authorizationID: purchase.id, amount: 50,
                    currency: "EUR", merchant: shop))
            let wrongCurrency = await walletCode {
                try await sandbox.network.refund(
                    RefundRequest(
                        networkReference: reference(), cardID: card.id, authorizationID: purchase.id, amount: 1,
                        currency: "USD", merchant: shop))
            }
            #expect(wrongCurrency == .currencyMismatch)
            // Another card's purchase is not found through this card.
            let other = try await sandbox.activeCard(on: wallet.id)
            let elsewhere = await walletCode {
                try await sandbox.network.refund(
                    RefundRequest(
                        networkReference: reference(), cardID: other.id, authorizationID: purchase.id, amount: 1,
                        currency: "EUR", merchant: shop))
            }
            #expect(elsewhere == .authorizationNotFound)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("Holds not cleared in time expire once, giving back what they held")
    func expiry() async throws {
        try await withCards { sandbox in
            let (wallet, card, authorization) = try await authorized(sandbox, amount: 1_000)
            _ = try await sandbox.network.clear(
                ClearingRequest(networkReference: reference(), authorizationID: authorization.id, amount: 100))
            #expect(try await sandbox.network.expireHolds(olderThan: 7 * 86_400) == 0)
            sandbox.clock.advance(by: 7 * 86_400 + 1)
            #expect(try await sandbox.network.expireHolds(olderThan: 7 * 86_400) == 1)
            #expect(try await sandbox.network.expireHolds(olderThan: 7 * 86_400) == 0)
            let balances = try await sandbox.balances(wallet.id)
            #expect(balances.pending == 0 && balances.posted == 99_900)
            #expect(try await sandbox.cards.card(card.id).spent.lifetime == 100)
            let late = await walletCode {
                try await sandbox.network.clear(
                    ClearingRequest(networkReference: reference(), authorizationID: authorization.id, amount: 100))
            }
            #expect(late == .authorizationReleased)
            #expect(try await sandbox.network.transactions(of: card.id).last?.kind == .expiry)
        }
    }

    @Test("Every hold is released exactly once whatever the order of clearings, reversals and expiry (property)")
    func exactlyOnce() async throws {
        var generator = SeededGenerator(seed: 0x5eed_c1ea)
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            try await sandbox.fund(wallet.id, 10_000_000)
            let card = try await sandbox.activeCard(on: wallet.id)
            var expectedPosted: Int64 = 10_000_000
            for round in 0..<40 {
                let amount = Int64.random(in: 1...5_000, using: &generator)
                let authorization = try await sandbox.network.authorize(
                    CardAuthorizationRequest(
                        networkReference: "auth-\(round)", token: card.token, amount: amount, currency: "EUR",
                        merchant: shop))
                try #require(authorization.approved)
                var remaining = amount
                // Up to six random messages, some of them concurrent duplicates or too large.
                for step in 0..<Int.random(in: 1...6, using: &generator) {
                    let part = Int64.random(in: 1...max(1, amount / 2), using: &generator)
                    let reference = "r-\(round)-\(step)"
                    switch Int.random(in: 0..<4, using: &generator) {
                    case 0, 1:
                        let request = ClearingRequest(
                            networkReference: reference, authorizationID: authorization.id, amount: part)
                        async let first = try? sandbox.network.clear(request)
                        async let again = try? sandbox.network.clear(request)
                        let (one, two) = await (first, again)
                        #expect(one == two, "a duplicate replays the first answer")
                        if one != nil {
                            remaining -= part
                            expectedPosted -= part
                        } else {
                            #expect(part > remaining || remaining == 0)
                        }
                    case 2:
                        if (try? await sandbox.network.reverse(
                            ReversalRequest(
                                networkReference: reference, authorizationID: authorization.id, amount: part)))
                            != nil
                        {
                            remaining -= part
                        }
                    default:
                        sandbox.clock.advance(by: 8 * 86_400)
                        if try await sandbox.network.expireHolds(olderThan: 7 * 86_400) > 0 { remaining = 0 }
                    }
                    #expect(remaining >= 0)
                }
            }
            sandbox.clock.advance(by: 8 * 86_400)
            try await sandbox.network.expireHolds(olderThan: 7 * 86_400)
            let balances = try await sandbox.balances(wallet.id)
            #expect(balances.pending == 0, "every hold released")
            #expect(balances.posted == expectedPosted, "exactly the cleared amounts booked")
            let held = try await sandbox.ledger.pool.read { db in
                try Int.fetchOne(
                    db, sql: "SELECT count(*) FROM ledger_transfers WHERE kind = 'pending' AND state = 'pending'")
            }
            #expect(held == 0)
            try await sandbox.ledger.verifyInvariants()
        }
    }
}
