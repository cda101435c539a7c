import CardTokens
import Foundation
import GRDB
import Ledger
import Testing
import VaultTestSupport

@testable import Wallet

/// A top-up whose acquirer answer was lost (timeout, 5xx, crash) keeps its hold until the
/// maintenance pass asks the acquirer and settles it, with the key's outcome in the same commit.
@Suite("Top-ups with a lost answer", .timeLimit(.minutes(2)))
struct TopUpResolutionTests {
    static let age: TimeInterval = 120
    static let abandon: TimeInterval = 24 * 3600

    /// A wallet with a card, and one top-up of 700 whose answer was lost after `behaviour`.
    static func lostTopUp(
        _ sandbox: WalletSandbox, _ behaviour: FakeAuthorizer.Behaviour
    ) async throws -> (wallet: WalletSummary, card: CardOnFile, key: IdempotencyKey) {
        let wallet = try await sandbox.createWallet("alice")
        let card = try await sandbox.addCard(to: wallet.id)
        let key = try sandbox.key("top-lost")
        sandbox.authorizer.script(behaviour)
        let error = await walletErrorCode {
            try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 700, currency: "EUR", idempotency: key)
        }
        #expect(error == .acquirerTimeout || error == .acquirerUnavailable)
        #expect(try await sandbox.balances(wallet.id).posted == 0)
        return (wallet, card, key)
    }

    func resolve(_ sandbox: WalletSandbox, after seconds: TimeInterval) async throws -> WalletService.TopUpResolution {
        sandbox.clock.advance(by: seconds)
        return try await sandbox.service.resolveUnknownTopUps(olderThan: Self.age, abandonAfter: Self.abandon)
    }

    @Test(
        "approved by the acquirer, answer lost: posted, and a retry of the key answers the approval",
        arguments: [true, false])
    func decided(approved: Bool) async throws {
        try await withWallet { sandbox in
            let (wallet, card, key) = try await Self.lostTopUp(sandbox, .loseAnswer(approved: approved))
            // Too young: left to the client's own retries.
            #expect(try await resolve(sandbox, after: 10) == .init())
            #expect(sandbox.authorizer.queries.isEmpty)

            let resolution = try await resolve(sandbox, after: Self.age)
            #expect(resolution.decided == 1 && resolution.pending == 0)
            let balances = try await sandbox.balances(wallet.id)
            #expect(balances.posted == (approved ? 700 : 0) && balances.creditsPending == 0)
            let calls = sandbox.authorizer.callCount
            let retry = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 700, currency: "EUR", idempotency: key)
            #expect(retry.status == (approved ? .approved : .declined))
            #expect(sandbox.authorizer.callCount == calls, "the retry is answered from the stored outcome")
            // Settled once: a second pass finds nothing.
            #expect(try await resolve(sandbox, after: Self.age) == .init())
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test(
        "no record at the acquirer: asked again each pass (a request may still arrive), voided only after the time allowed"
    )
    func notReceived() async throws {
        try await withWallet { sandbox in
            let (wallet, card, key) = try await Self.lostTopUp(sandbox, .fail(.acquirerUnavailable))
            #expect(try await resolve(sandbox, after: Self.age + 1).pending == 1)
            #expect(try await sandbox.balances(wallet.id).creditsPending == 700, "a 404 alone voids nothing")
            let resolution = try await resolve(sandbox, after: Self.abandon)
            #expect(resolution.abandoned.count == 1)
            #expect(try await sandbox.balances(wallet.id) == Balances())
            let retry = await walletErrorCode {
                try await sandbox.service.topUp(
                    walletID: wallet.id, cardID: card.id, amount: 700, currency: "EUR", idempotency: key)
            }
            #expect(retry == .topUpNotCompleted)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("the acquirer cannot say: asked again each pass, then voided and reported after the time allowed")
    func abandoned() async throws {
        try await withWallet { sandbox in
            let (wallet, _, _) = try await Self.lostTopUp(sandbox, .loseAnswer(approved: true))
            sandbox.authorizer.failQueries(.acquirerUnavailable)
            #expect(try await resolve(sandbox, after: Self.age + 1).pending == 1)
            #expect(try await sandbox.balances(wallet.id).creditsPending == 700)
            let resolution = try await resolve(sandbox, after: Self.abandon)
            #expect(resolution.abandoned.count == 1 && resolution.pending == 0)
            #expect(try await sandbox.balances(wallet.id) == Balances())
            #expect(sandbox.authorizer.queries.count == 2)
        }
    }

    @Test("an attempt that cannot be settled now does not stop the others")
    func oneFailureDoesNotStopThePass() async throws {
        try await withWallet { sandbox in
            let wallet = try await sandbox.createWallet("alice")
            let card = try await sandbox.addCard(to: wallet.id)
            sandbox.authorizer.script(.loseAnswer(approved: true), .loseAnswer(approved: true))
            for name in ["first", "second"] {
                _ = await walletErrorCode {
                    try await sandbox.service.topUp(
                        walletID: wallet.id, cardID: card.id, amount: 700, currency: "EUR",
                        idempotency: try sandbox.key(name))
                }
                sandbox.clock.advance(by: 1)
            }
            // The oldest one's hold is voided behind the resolver's back: posting it must fail.
            let first = try #require(sandbox.authorizer.references.first)
            let voided = try await sandbox.ledger.createTransfers([
                TransferRequest(
                    id: "\(first):manual-void", debitAccountID: WalletService.receivableAccountID(Money.eur),
                    creditAccountID: wallet.id, amount: 700, kind: .void(pendingID: first))
            ])
            try #require(voided == [.created])
            let resolution = try await resolve(sandbox, after: Self.age)
            #expect(resolution.decided == 1 && resolution.pending == 1)
            #expect(try await sandbox.balances(wallet.id).posted == 700)
        }
    }

    @Test("a key a request holds now is left to that request")
    func keyInUse() async throws {
        try await withWallet { sandbox in
            let (wallet, card, key) = try await Self.lostTopUp(sandbox, .loseAnswer(approved: true))
            sandbox.clock.advance(by: Self.age + 1)
            let gate = Gate()
            sandbox.authorizer.hold(until: gate)
            async let retry = sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 700, currency: "EUR", idempotency: key)
            while sandbox.authorizer.callCount < 2 { await Task.yield() }
            let resolution = try await sandbox.service.resolveUnknownTopUps(
                olderThan: Self.age, abandonAfter: Self.abandon)
            #expect(resolution.pending == 1 && sandbox.authorizer.queries.isEmpty)
            gate.open()
            #expect(try await retry.status == .approved)
            #expect(try await sandbox.balances(wallet.id).posted == 700)
        }
    }
}
