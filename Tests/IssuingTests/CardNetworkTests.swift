import CardTokens
import Foundation
import GRDB
import Issuing
import Ledger
import Testing
import VaultTestSupport
import Wallet

private let shop = Merchant(id: "m-1", name: "Corner shop", mcc: "5411", country: "DE")

private func purchase(
    _ card: VirtualCard?, _ amount: Int64, reference: String = "net-\(UUID().uuidString)", merchant: Merchant = shop,
    currency: String = "EUR", cdeDecline: DeclineCode? = nil
) -> CardAuthorizationRequest {
    CardAuthorizationRequest(
        networkReference: reference, token: card?.token, cdeDecline: cdeDecline, amount: amount, currency: currency,
        merchant: merchant)
}

/// Runs `count` authorizations at once; their outcomes in no particular order.
private func concurrently(
    _ count: Int, _ sandbox: CardSandbox, _ request: @escaping @Sendable (Int) -> CardAuthorizationRequest
) async throws -> [CardAuthorization] {
    try await withThrowingTaskGroup(of: CardAuthorization.self) { group in
        for index in 0..<count {
            group.addTask { try await sandbox.network.authorize(request(index)) }
        }
        return try await group.reduce(into: []) { $0.append($1) }
    }
}

@Suite("Card-network authorizations on the wallet side", .timeLimit(.minutes(2)))
struct CardNetworkTests {
    @Test("An approval holds the amount on the wallet and counts it against the card; a retry replays it")
    func approval() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            try await sandbox.fund(wallet.id, 10_000)
            let card = try await sandbox.activeCard(on: wallet.id)
            let request = purchase(card, 2_500, reference: "net-1")
            let first = try await sandbox.network.authorize(request)
            #expect(first.approved)
            #expect(first.declineCode == nil)
            #expect(first.authCode?.count == 6)
            #expect(first.cardID == card.id)
            #expect(first.walletID == wallet.id)
            let balances = try #require(try await sandbox.ledger.account(wallet.id)).balances
            #expect(balances.posted == 10_000)
            #expect(balances.available == 7_500)
            let hold = try #require(try await sandbox.ledger.transfer(first.id))
            #expect(hold.kind == "pending" && hold.amount == 2_500)
            #expect(hold.creditAccountID == WalletService.cardNetworkAccountID("EUR"))
            #expect(try await sandbox.cards.card(card.id).spent.lifetime == 2_500)

            // The same reference replays the first answer and holds nothing more.
            #expect(try await sandbox.network.authorize(request) == first)
            #expect(try #require(try await sandbox.ledger.account(wallet.id)).balances.available == 7_500)
            // The same reference with another amount is the network's bug: refused, nothing held.
            let reused = await walletCode {
                try await sandbox.network.authorize(purchase(card, 2_600, reference: "net-1"))
            }
            #expect(reused == .networkReferenceReused)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("Declines are stored and replayed too: by the CDE, by the card, by the ledger")
    func declines() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            try await sandbox.fund(wallet.id, 1_000)
            let card = try await sandbox.activeCard(on: wallet.id)

            let unknown = try await sandbox.network.authorize(purchase(nil, 100, cdeDecline: .cardNotFound))
            #expect(!unknown.approved && unknown.declineCode == .cardNotFound && unknown.cardID == nil)
            let cvv = try await sandbox.network.authorize(purchase(card, 100, cdeDecline: .incorrectCVV))
            #expect(cvv.declineCode == .incorrectCVV && cvv.cardID == card.id)
            let currency = try await sandbox.network.authorize(purchase(card, 100, currency: "USD"))
            #expect(currency.declineCode == .currencyNotSupported)

            let poor = purchase(card, 1_001, reference: "net-poor")
            let declined = try await sandbox.network.authorize(poor)
            #expect(declined.declineCode == .insufficientFunds)
            #expect(try await sandbox.cards.card(card.id).spent == SpendCounters(), "a refused hold spends nothing")
            // Money arriving later does not change the stored answer to that reference.
            try await sandbox.fund(wallet.id, 5_000)
            #expect(try await sandbox.network.authorize(poor) == declined)
            #expect(try await sandbox.network.authorize(purchase(card, 1_001)).approved)

            // A token that is no virtual card of ours (a card tokenized from outside).
            let outside = CardAuthorizationRequest(
                networkReference: "net-outside", token: Token(unchecked: "tok_notavirtualcard000000000000000"),
                amount: 100, currency: "EUR", merchant: shop)
            #expect(try await sandbox.network.authorize(outside).declineCode == .cardNotFound)
            // Also when the CDE found the card data wrong: a vault card with no virtual card (an
            // issue whose retry never came) must not tell right guesses from wrong ones.
            var outsideGuess = outside
            outsideGuess.networkReference = "net-outside-guess"
            outsideGuess.cdeDecline = .incorrectCVV
            #expect(try await sandbox.network.authorize(outsideGuess).declineCode == .cardNotFound)
        }
    }

    @Test("Five wrong expiries or CVVs pause the card, right ones between them or not; a paused card answers alike")
    func verificationLockout() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            try await sandbox.fund(wallet.id, 10_000)
            let card = try await sandbox.activeCard(on: wallet.id)
            let limit = VirtualCard.maximumFailedVerifications

            // Failures are counted; the cardholder's own purchases between them forgive nothing, or
            // a guesser could stay just under the limit for ever.
            for _ in 1..<limit {
                let guess = try await sandbox.network.authorize(purchase(card, 100, cdeDecline: .incorrectCVV))
                #expect(guess.declineCode == .incorrectCVV)
                #expect(try await sandbox.network.authorize(purchase(card, 100)).approved)
            }
            #expect(try await sandbox.cards.card(card.id).failedVerifications == limit - 1)
            // Re-activating an active card is no unpause: the count stays.
            _ = try await sandbox.cards.change(
                card.id, VirtualCardChange(state: .active), idempotency: sandbox.freshKey())
            #expect(try await sandbox.cards.card(card.id).failedVerifications == limit - 1)

            // The limit-th failure pauses the card.
            let last = try await sandbox.network.authorize(purchase(card, 100, cdeDecline: .incorrectCVV))
            #expect(last.declineCode == .incorrectCVV)
            let paused = try await sandbox.cards.card(card.id)
            #expect(paused.state == .paused && paused.failedVerifications == limit)

            // Now right and wrong card data get the same answer, and the count no longer moves.
            let right = try await sandbox.network.authorize(purchase(card, 100))
            let wrong = try await sandbox.network.authorize(purchase(card, 100, cdeDecline: .incorrectCVV))
            #expect(right.declineCode == .cardPaused && wrong.declineCode == .cardPaused)
            #expect(try await sandbox.cards.card(card.id).failedVerifications == limit)

            // Only the cardholder lifts it; the count starts again.
            let active = try await sandbox.cards.change(
                card.id, VirtualCardChange(state: .active), idempotency: sandbox.freshKey())
            #expect(active.state == .active && active.failedVerifications == 0)
            #expect(try await sandbox.network.authorize(purchase(card, 100)).approved)
            #expect(
                try #require(try await sandbox.ledger.account(wallet.id)).balances.available == 10_000 - 100 * limit)
        }
    }

    @Test("A card that cannot spend is declined for its state before its card data is looked at")
    func stateBeforeCardData() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            let inactive = try await sandbox.cards.issue(
                to: wallet.id, NewVirtualCard(), idempotency: sandbox.freshKey())
            for decline in [DeclineCode.incorrectCVV, .cardExpired, nil] {
                let outcome = try await sandbox.network.authorize(purchase(inactive, 100, cdeDecline: decline))
                #expect(outcome.declineCode == .cardInactive)
            }
            #expect(try await sandbox.cards.card(inactive.id).failedVerifications == 0)
        }
    }

    @Test("64 concurrent authorizations never hold more than the wallet has")
    func concurrentBalance() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            try await sandbox.fund(wallet.id, 3_000)
            let card = try await sandbox.activeCard(on: wallet.id)
            let outcomes = try await concurrently(64, sandbox) { _ in purchase(card, 100) }
            #expect(outcomes.filter(\.approved).count == 30)
            #expect(outcomes.filter { !$0.approved }.allSatisfy { $0.declineCode == .insufficientFunds })
            let balances = try #require(try await sandbox.ledger.account(wallet.id)).balances
            #expect(balances.available == 0)
            #expect(try await sandbox.cards.card(card.id).spent.lifetime == 3_000)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("Authorizations sharing a commit fail alone: a reused reference among 32 concurrent ones")
    func sharedCommitFailsAlone() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            try await sandbox.fund(wallet.id, 100_000)
            let card = try await sandbox.activeCard(on: wallet.id)
            let first = try await sandbox.network.authorize(purchase(card, 100, reference: "net-shared"))
            #expect(first.approved)
            let outcomes = await withTaskGroup(of: Result<CardAuthorization, WalletError>.self) { group in
                for index in 0..<32 {
                    group.addTask {
                        // Index 0 reuses the first reference with another amount: the network's bug.
                        let request =
                            index == 0
                            ? purchase(card, 200, reference: "net-shared") : purchase(card, 100)
                        do {
                            return .success(try await sandbox.network.authorize(request))
                        } catch {
                            return .failure(error as? WalletError ?? WalletError(.internalFailure, "\(error)"))
                        }
                    }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.count { (try? $0.get())?.approved == true } == 31)
            #expect(
                outcomes.count {
                    if case .failure(let error) = $0 { error.code == .networkReferenceReused } else { false }
                } == 1)
            #expect(try #require(try await sandbox.ledger.account(wallet.id)).balances.available == 100_000 - 3_200)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("64 concurrent authorizations never exceed a limit")
    func concurrentLimit() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            try await sandbox.fund(wallet.id, 100_000)
            let card = try await sandbox.activeCard(
                on: wallet.id, controls: SpendControls(limits: SpendLimits(daily: 1_000)))
            let outcomes = try await concurrently(64, sandbox) { _ in purchase(card, 100) }
            #expect(outcomes.filter(\.approved).count == 10)
            let declined = outcomes.filter { !$0.approved }
            #expect(declined.allSatisfy { $0.declineCode == .spendLimitExceeded && $0.limitWindow == .daily })
            #expect(try #require(try await sandbox.ledger.account(wallet.id)).balances.available == 99_000)
        }
    }

    @Test("Under concurrency a single-use card is approved once and a merchant-locked card at one merchant")
    func concurrentCardTypes() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            try await sandbox.fund(wallet.id, 100_000)
            let single = try await sandbox.activeCard(on: wallet.id, kind: .singleUse)
            let singles = try await concurrently(32, sandbox) { _ in purchase(single, 100) }
            #expect(singles.filter(\.approved).count == 1)
            #expect(singles.filter { !$0.approved }.allSatisfy { $0.declineCode == .singleUseConsumed })
            #expect(try await sandbox.cards.card(single.id).state == .closed)

            let locked = try await sandbox.activeCard(on: wallet.id, kind: .merchantLocked)
            let merchants = (0..<4).map { Merchant(id: "m-\($0)", name: "Shop \($0)", mcc: "5411", country: "DE") }
            let lockedOutcomes = try await concurrently(32, sandbox) { index in
                purchase(locked, 100, merchant: merchants[index % 4])
            }
            let approvedMerchants = Set(lockedOutcomes.filter(\.approved).map(\.merchant.id))
            #expect(approvedMerchants.count == 1)
            let lockedTo = try await sandbox.cards.card(locked.id).lockedMerchant
            #expect(lockedTo == approvedMerchants.first)
            #expect(lockedOutcomes.filter(\.approved).count == 8)
            #expect(lockedOutcomes.filter { !$0.approved }.allSatisfy { $0.declineCode == .merchantLocked })
        }
    }

    @Test("Malformed messages are refused before anything is stored; no card number lands in wallet.db")
    func malformed() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            let card = try await sandbox.activeCard(on: wallet.id)
            let bad: [CardAuthorizationRequest] = [
                purchase(card, 0), purchase(card, -5), purchase(card, 100, reference: ""),
                purchase(card, 100, currency: "eur"),
                purchase(card, 100, merchant: Merchant(id: "m", name: "x", mcc: "541", country: "DE")),
                purchase(card, 100, merchant: Merchant(id: "m", name: "x", mcc: "5411", country: "de")),
                purchase(
                    card, 100, merchant: Merchant(id: "m", name: "4111 1111 1111 1111", mcc: "5411", country: "DE")),
                purchase(card, 100, reference: "4242424242424242"),
                purchase(nil, 100),
            ]
            for request in bad {
                let code = await walletCode { try await sandbox.network.authorize(request) }
                #expect(code == .invalidNetworkMessage, "\(request.amount) \(request.merchant)")
            }
            let rows = try await sandbox.ledger.pool.read { db in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM network_messages") ?? -1
            }
            #expect(rows == 0)
        }
    }
}
