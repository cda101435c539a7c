import CardTokens
import Foundation
import Ledger
import Synchronization
import Testing
import VaultTestSupport
import Wallet

/// A ``WalletStore`` that passes every call to another and notes what the service asked of it:
/// the seam a second backend implements, seen from the service's side.
private final class WatchedWalletStore: WalletStore {
    let inner: any WalletStore
    private let log = Mutex<[String]>([])

    init(_ inner: any WalletStore) { self.inner = inner }

    var calls: [String] { log.withLock { $0 } }
    func reset() { log.withLock { $0 = [] } }
    private func note(_ call: String) { log.withLock { $0.append(call) } }

    /// A commit as "commit" and the writes it made, e.g. `commit[topUpDecided,outcome]`.
    private static func describe(_ writes: [WalletWrite]) -> String {
        writes.map { write in
            switch write {
            case .outcome: "outcome"
            case .topUpAttempt: "topUpAttempt"
            case .topUpFailed: "topUpFailed"
            case .topUpDecided: "topUpDecided"
            }
        }.joined(separator: ",")
    }

    var ledger: any LedgerStore { inner.ledger }

    func createWallet(
        _ wallet: NewWallet, numbering: VirtualAccountNumbering,
        recording: @escaping @Sendable (WalletSummary) throws -> [WalletWrite]
    ) async throws -> WalletSummary {
        try await inner.createWallet(wallet, numbering: numbering) { summary in
            let writes = try recording(summary)
            self.note("createWallet[\(Self.describe(writes))]")
            return writes
        }
    }

    func wallet(_ id: String, tenant: String) async throws -> WalletSummary? {
        note("wallet")
        return try await inner.wallet(id, tenant: tenant)
    }

    func walletEntry(_ id: String) async throws -> WalletEntry? {
        note("walletEntry")
        return try await inner.walletEntry(id)
    }

    func saveCard(
        _ card: CardOnFile, fingerprintScope: Int64, replacingToken: String?,
        recording: @escaping @Sendable (CardOnFile, Bool) throws -> [WalletWrite]
    ) async throws -> (card: CardOnFile, created: Bool) {
        try await inner.saveCard(card, fingerprintScope: fingerprintScope, replacingToken: replacingToken) {
            let writes = try recording($0, $1)
            self.note("saveCard[\(Self.describe(writes))]")
            return writes
        }
    }

    func savedToken(of walletID: String, fingerprint: String) async throws -> String? {
        note("savedToken")
        return try await inner.savedToken(of: walletID, fingerprint: fingerprint)
    }

    func cards(of walletID: String) async throws -> [CardOnFile] {
        note("cards")
        return try await inner.cards(of: walletID)
    }

    func cards(fingerprintScopeBelow scope: Int64) async throws -> [(id: String, token: Token, tenant: String)] {
        note("staleCards")
        return try await inner.cards(fingerprintScopeBelow: scope)
    }

    func setFingerprint(of cardID: String, to fingerprint: String?, scope: Int64) async throws {
        note("setFingerprint")
        try await inner.setFingerprint(of: cardID, to: fingerprint, scope: scope)
    }

    func commit(
        _ transfers: [TransferRequest], recording: @escaping @Sendable ([TransferResult]) throws -> [WalletWrite]
    ) async throws -> [TransferResult] {
        try await inner.commit(transfers) { results in
            let writes = try recording(results)
            self.note("commit[\(Self.describe(writes))]")
            return writes
        }
    }

    func write(_ writes: [WalletWrite]) async throws {
        note("write[\(Self.describe(writes))]")
        try await inner.write(writes)
    }

    func topUpContext(key: IdempotencyKey, walletID: String, cardID: String) async throws -> TopUpContext {
        note("topUpContext")
        return try await inner.topUpContext(key: key, walletID: walletID, cardID: cardID)
    }

    func unresolvedTopUps(
        createdBefore cutoff: Date, limit: Int
    ) async throws -> [(attempt: TopUpAttempt, key: IdempotencyKey)] {
        note("unresolvedTopUps")
        return try await inner.unresolvedTopUps(createdBefore: cutoff, limit: limit)
    }

    func outcome(of key: IdempotencyKey) async throws -> StoredIdempotencyOutcome? {
        note("outcome")
        return try await inner.outcome(of: key)
    }

    func purgeOutcomes(before cutoff: Date, batchSize: Int) async throws -> Int {
        note("purgeOutcomes")
        return try await inner.purgeOutcomes(before: cutoff, batchSize: batchSize)
    }
}

@Suite("The wallet's store seam", .timeLimit(.minutes(2)))
struct WalletStoreSeamTests {
    /// Runs `body` over a wallet service whose store is watched.
    private func withWatchedWallet(
        _ body: (WalletSandbox, WatchedWalletStore) async throws -> Void
    ) async throws {
        let watched = Mutex<WatchedWalletStore?>(nil)
        try await withWallet(store: { inner in
            let store = WatchedWalletStore(inner)
            watched.withLock { $0 = store }
            return store
        }) { sandbox in
            try await body(sandbox, try #require(watched.withLock { $0 }))
        }
    }

    @Test("A top-up reads once before it holds money; the hold and the decision each commit with their records")
    func topUpCalls() async throws {
        try await withWatchedWallet { sandbox, store in
            let wallet = try await sandbox.createWallet()
            let card = try await sandbox.addCard(to: wallet.id)
            store.reset()
            let key = try sandbox.key("top-1")
            let topUp = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 900, currency: "EUR", idempotency: key)
            #expect(topUp.status == .approved)
            #expect(store.calls == ["topUpContext", "commit[topUpAttempt]", "commit[topUpDecided,outcome]"])

            // A replay reads its outcome in the same single read, and writes nothing.
            store.reset()
            let replay = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 900, currency: "EUR", idempotency: key)
            #expect(replay == topUp)
            #expect(store.calls == ["topUpContext"])
            #expect(try await sandbox.balance(wallet.id) == 900)
        }
    }

    @Test("A declined top-up voids its hold in the commit that records the decline")
    func declinedTopUpCalls() async throws {
        try await withWatchedWallet { sandbox, store in
            sandbox.authorizer.script(.decline(code: "05"))
            let wallet = try await sandbox.createWallet()
            let card = try await sandbox.addCard(to: wallet.id)
            store.reset()
            let topUp = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 900, currency: "EUR", idempotency: sandbox.freshKey())
            #expect(topUp.status == .declined)
            #expect(store.calls == ["topUpContext", "commit[topUpAttempt]", "commit[topUpDecided,outcome]"])
            #expect(try await sandbox.balances(wallet.id) == Balances())
        }
    }

    @Test("A wallet, a saved card and a transfer each commit with their Idempotency-Key's outcome")
    func outcomesCommitWithTheirChange() async throws {
        try await withWatchedWallet { sandbox, store in
            let source = try await sandbox.createWallet("a")
            let destination = try await sandbox.createWallet("b")
            #expect(store.calls == ["createWallet[outcome]", "createWallet[outcome]"])
            try await sandbox.fund(source.id, 500)
            store.reset()
            _ = try await sandbox.addCard(to: source.id)
            #expect(store.calls.last == "saveCard[outcome]")
            store.reset()
            _ = try await sandbox.service.transfer(
                from: source.id, to: destination.id, amount: 200, currency: "EUR", idempotency: sandbox.freshKey())
            #expect(store.calls == ["commit[outcome]"])
            // Refused by the ledger: the refusal is the outcome, committed the same way.
            store.reset()
            let code = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: source.id, to: destination.id, amount: 10_000, currency: "EUR",
                    idempotency: sandbox.freshKey())
            }
            #expect(code == .insufficientFunds)
            #expect(store.calls == ["commit[outcome]"])
            #expect(try await sandbox.balance(destination.id) == 200)
        }
    }
}
