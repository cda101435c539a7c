import CardTokens
import Foundation
import GRDB
import Issuing
import Ledger
import Synchronization
import Testing
import VaultTestSupport
import Wallet

/// The vault's card issuing as the wallet side sees it: metadata of a new token each call, and
/// the requests it got.
final class FakeIssuer: CardIssuer {
    let issuingBIN = "999999"
    private let issued = Mutex<[IssueCardRequest]>([])
    private let counter = Atomic<Int>(0)

    var requests: [IssueCardRequest] { issued.withLock { $0 } }

    func issueCard(_ request: IssueCardRequest, by principal: Principal, origin: String) async throws -> CardMetadata {
        issued.withLock { $0.append(request) }
        let number = counter.add(1, ordering: .relaxed).newValue
        let body = "issued" + String(repeating: "0", count: 18) + String(format: "%06d", number)
        return CardMetadata(
            token: Token(unchecked: Token.opaquePrefix + body), format: .opaque, bin: issuingBIN,
            last4: String(format: "%04d", number % 10_000), brand: .unknown, expMonth: 12, expYear: 2033,
            fingerprint: "fp-\(number)", createdAt: Date(timeIntervalSince1970: 1_900_000_000), cvvExpiresAt: nil)
    }
}

/// One test's card service over a fresh `wallet.db`.
struct CardSandbox {
    let cards: VirtualCardService
    let wallets: WalletService
    let ledger: SQLiteLedger
    let issuer: FakeIssuer
    let network: CardNetworkService
    let clock: ManualClock

    func freshKey(owner: String = "cred_test") throws -> IdempotencyKey {
        try IdempotencyKey(owner: owner, key: "k-\(UUID().uuidString)")
    }

    func wallet(tenant: String = Principal.defaultTenant) async throws -> WalletSummary {
        try await wallets.createWallet(ownerRef: "alice", currency: "EUR", idempotency: freshKey(), tenant: tenant)
    }

    /// Credits `wallet` with `amount` from the receivable account, as an approved top-up would.
    func fund(_ wallet: String, _ amount: Int64) async throws {
        let results = try await ledger.createTransfers([
            TransferRequest(
                id: "fund_\(UUID().uuidString)", debitAccountID: WalletService.receivableAccountID(try Currency("EUR")),
                creditAccountID: wallet, amount: amount)
        ])
        try #require(results == [.created])
    }

    /// An active card of `kind` with `controls`, issued to `wallet`.
    func activeCard(
        on wallet: String, kind: VirtualCard.Kind = .multiUse, controls: SpendControls = .init()
    ) async throws -> VirtualCard {
        try await cards.issue(
            to: wallet, NewVirtualCard(kind: kind, controls: controls, activate: true), idempotency: freshKey())
    }
}

func withCards<R>(issuer enabled: Bool = true, _ body: (CardSandbox) async throws -> R) async throws -> R {
    try await withTemporaryDirectory("issuing-tests") { directory in
        let clock = ManualClock()
        let ledger = try SQLiteLedger(directory: directory, clock: clock.function)
        let wallets = WalletService(
            store: try SQLiteWalletStore(ledger: ledger), cards: NoDirectory(), authorizer: nil, clock: clock.function)
        let issuer = FakeIssuer()
        let store = try SQLiteIssuingStore(ledger: ledger)
        let cards = VirtualCardService(
            store: store, wallets: wallets, issuer: enabled ? issuer : nil, clock: clock.function)
        return try await body(
            CardSandbox(
                cards: cards, wallets: wallets, ledger: ledger, issuer: issuer,
                network: CardNetworkService(store: store, clock: clock.function), clock: clock))
    }
}

struct NoDirectory: CardDirectory {
    func metadata(of token: Token, tenant: String) async throws -> CardMetadata? { nil }
}

func walletCode<R>(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> R
) async -> WalletError.Code? {
    await thrownError(WalletError.self, sourceLocation: sourceLocation, body)?.code
}
