import CardTokens
import Foundation
import GRDB
import Ledger
import Synchronization
import Testing
import VaultTestSupport
import Wallet

// Helpers shared by the wallet suites. Every test opens its own `wallet.db` in a temporary
// folder of its own, removed afterwards. The wallet cannot see the vault, so cards come from an
// in-memory directory and charges go to a scriptable fake authorizer.

// MARK: - Sandbox

/// One test's wallet service and what it stands on.
struct WalletSandbox {
    let service: WalletService
    let ledger: SQLiteLedger
    let cards: InMemoryCardDirectory
    let authorizer: FakeAuthorizer
    let clock: ManualClock
    let directory: String

    var databasePath: String { (directory as NSString).appendingPathComponent(SQLiteLedger.fileName) }

    /// A key of the default caller.
    func key(_ key: String, owner: String = "cred_test") throws -> IdempotencyKey {
        try IdempotencyKey(owner: owner, key: key)
    }

    /// A new key each call (for calls whose idempotency is not under test).
    func freshKey(owner: String = "cred_test") throws -> IdempotencyKey {
        try IdempotencyKey(owner: owner, key: "k-\(UUID().uuidString)")
    }

    func createWallet(_ ownerRef: String = "customer-1", currency: String = "EUR") async throws -> WalletSummary {
        try await service.createWallet(ownerRef: ownerRef, currency: currency, idempotency: freshKey())
    }

    /// Credits `wallet` with `amount` straight from the currency's receivable account (as an
    /// approved top-up would), without going through a card.
    func fund(_ wallet: String, _ amount: Int64, currency: String = "EUR") async throws {
        let results = try await ledger.createTransfers([
            TransferRequest(
                id: "fund_\(UUID().uuidString)",
                debitAccountID: WalletService.receivableAccountID(try Currency(currency)),
                creditAccountID: wallet, amount: amount)
        ])
        try #require(results == [.created], "funding \(wallet) failed: \(results)")
    }

    /// The posted balance (credits minus debits) of a ledger account that must exist.
    func balance(_ accountID: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Int64 {
        let account = try #require(
            try await ledger.account(accountID), "no account \(accountID)", sourceLocation: sourceLocation)
        return account.balances.posted
    }

    /// All four balances of a ledger account that must exist.
    func balances(_ accountID: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Balances {
        let account = try #require(
            try await ledger.account(accountID), "no account \(accountID)", sourceLocation: sourceLocation)
        return account.balances
    }

    /// Registers a card in the directory and saves it to `wallet`.
    func addCard(
        to wallet: String, _ metadata: CardMetadata? = nil
    ) async throws -> CardOnFile {
        let metadata = metadata ?? TestCards.visa()
        cards.put(metadata)
        return try await service.addCard(walletID: wallet, token: metadata.token, idempotency: freshKey()).card
    }

    /// The number of rows of a table of `wallet.db`.
    func count(_ table: String) async throws -> Int {
        try await ledger.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0 }
    }
}

/// Runs `body` with a fresh wallet service in a temporary folder of its own, removed afterwards.
func withWallet<R>(
    authorizer configure: ((FakeAuthorizer) -> Void)? = nil,
    withoutAuthorizer: Bool = false,
    numbering: VirtualAccountNumbering = .default,
    store wrap: ((any WalletStore) -> any WalletStore)? = nil,
    _ body: (WalletSandbox) async throws -> R
) async throws -> R {
    let directory =
        FileManager.default.temporaryDirectory
        .appendingPathComponent("wallet-tests-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let clock = ManualClock()
    let ledger = try SQLiteLedger(directory: directory, clock: clock.function)
    let cards = InMemoryCardDirectory()
    let authorizer = FakeAuthorizer(directory: cards)
    configure?(authorizer)
    let store = try SQLiteWalletStore(ledger: ledger)
    let service = WalletService(
        store: wrap?(store) ?? store, cards: cards, authorizer: withoutAuthorizer ? nil : authorizer,
        numbering: numbering,
        clock: clock.function)
    return try await body(
        WalletSandbox(
            service: service, ledger: ledger, cards: cards, authorizer: authorizer, clock: clock,
            directory: directory))
}

// MARK: - Errors

/// The wallet error code `body` throws, or `nil` (recorded as a failure) if it throws another
/// error or none.
func walletErrorCode<R>(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> R
) async -> WalletError.Code? {
    await thrownError(WalletError.self, sourceLocation: sourceLocation, body)?.code
}

// MARK: - Cards

/// Card metadata built by hand, as the vault would return it: BIN, last four, brand, expiry
/// and fingerprint, never a PAN.
enum TestCards {
    private static let counter = Atomic<Int>(0)

    /// A new opaque token: `tok_` and 30 URL-safe characters.
    static func token() -> Token {
        let number = counter.add(1, ordering: .relaxed).newValue
        let body = "test" + String(repeating: "0", count: 20) + String(format: "%06d", number)
        precondition(body.utf8.count == Token.opaqueBodyLength)
        let token = Token(unchecked: Token.opaquePrefix + body)
        precondition(Token.format(of: token.rawValue) == .opaque)
        return token
    }

    static func metadata(
        token: Token = token(), bin: String, last4: String, brand: CardBrand, expMonth: Int = 12,
        expYear: Int = 2032, fingerprint: String
    ) -> CardMetadata {
        CardMetadata(
            token: token, format: .opaque, bin: bin, last4: last4, brand: brand, expMonth: expMonth,
            expYear: expYear, fingerprint: fingerprint, createdAt: Date(timeIntervalSince1970: 1_899_000_000),
            cvvExpiresAt: nil)
    }

    /// Visa test card 4111 1111 1111 1111 (by BIN and last four only).
    static func visa(token: Token = token(), expMonth: Int = 12, expYear: Int = 2032) -> CardMetadata {
        metadata(
            token: token, bin: "411111", last4: "1111", brand: .visa, expMonth: expMonth, expYear: expYear,
            fingerprint: "fp-4111")
    }

    /// Visa test card 4242 4242 4242 4242 (by BIN and last four only).
    static func otherVisa(token: Token = token()) -> CardMetadata {
        metadata(token: token, bin: "424242", last4: "4242", brand: .visa, fingerprint: "fp-4242")
    }
}

/// Tokens to metadata, as the vault's adapter would answer; a deleted token is unknown.
final class InMemoryCardDirectory: CardDirectory {
    private let entries = Mutex<[Token: (metadata: CardMetadata, tenant: String)]>([:])
    /// The vault's newest root-key version, as a root rotation would move it.
    let rootVersion = Mutex<UInt32>(0)

    var fingerprintVersion: UInt32 { rootVersion.withLock { $0 } }

    func put(_ metadata: CardMetadata, tenant: String = Principal.defaultTenant) {
        entries.withLock { $0[metadata.token] = (metadata, tenant) }
    }

    func delete(_ token: Token) {
        _ = entries.withLock { $0.removeValue(forKey: token) }
    }

    /// Another tenant's token is unknown, as the vault answers it.
    func metadata(of token: Token, tenant: String) async throws -> CardMetadata? {
        entries.withLock { entry in entry[token].flatMap { $0.tenant == tenant ? $0.metadata : nil } }
    }
}

// MARK: - Authorizer

/// A scriptable authorization gateway: answers each call with the next scripted behaviour (or
/// the default), refuses tokens the directory no longer holds, and records what it saw.
final class FakeAuthorizer: CardAuthorizing {
    enum Behaviour: Sendable {
        case approve(authCode: String)
        case decline(code: String)
        /// Not received by the acquirer: it has no record of the reference.
        case fail(AuthorizationError.Code)
        /// Decided by the acquirer (recorded), but the answer is lost: `acquirer_timeout`.
        case loseAnswer(approved: Bool)
    }

    private struct State {
        var script: [Behaviour] = []
        var fallback: Behaviour = .approve(authCode: "A00001")
        var requests: [AuthorizationRequest] = []
        var gate: Gate?
        /// The acquirer's decisions by reference, as `outcome(ofReference:)` answers them.
        var decided: [String: AuthorizationOutcome] = [:]
        /// Set: queries fail with it (the acquirer cannot say now).
        var queryFailure: AuthorizationError.Code?
        var queries: [String] = []
    }

    private let state = Mutex(State())
    private let directory: InMemoryCardDirectory

    init(directory: InMemoryCardDirectory) {
        self.directory = directory
    }

    /// Answers the next calls with `behaviours`, in order, then with the default.
    func script(_ behaviours: Behaviour...) {
        state.withLock { $0.script += behaviours }
    }

    /// The answer once the script is used up.
    func setDefault(_ behaviour: Behaviour) {
        state.withLock { $0.fallback = behaviour }
    }

    /// Holds every call until `gate` opens.
    func hold(until gate: Gate) {
        state.withLock { $0.gate = gate }
    }

    var requests: [AuthorizationRequest] { state.withLock { $0.requests } }
    var callCount: Int { requests.count }
    /// The references asked about with `outcome(ofReference:)`, in order.
    var queries: [String] { state.withLock { $0.queries } }

    /// From now on, queries fail with `code` (`nil`: they answer).
    func failQueries(_ code: AuthorizationError.Code?) {
        state.withLock { $0.queryFailure = code }
    }

    func outcome(ofReference reference: String) async throws(AuthorizationError) -> AuthorizationOutcome? {
        let (failure, decided) = state.withLock { state in
            state.queries.append(reference)
            return (state.queryFailure, state.decided[reference])
        }
        if let failure { throw AuthorizationError(failure, "scripted query failure") }
        return decided
    }
    var references: [String] { requests.map(\.reference) }

    func authorize(_ request: AuthorizationRequest) async throws(AuthorizationError) -> AuthorizationOutcome {
        let (behaviour, gate) = state.withLock { state -> (Behaviour, Gate?) in
            state.requests.append(request)
            let behaviour = state.script.isEmpty ? state.fallback : state.script.removeFirst()
            return (behaviour, state.gate)
        }
        if let gate { await gate.wait() }
        guard (try? await directory.metadata(of: request.token, tenant: request.tenant)) != nil else {
            throw AuthorizationError(.tokenNotFound, "no such token")
        }
        func approved(_ authCode: String) -> AuthorizationOutcome {
            AuthorizationOutcome(
                decision: .approved, authCode: authCode, acquirerReference: "acq-\(request.reference)",
                declineCode: nil)
        }
        func declined(_ code: String) -> AuthorizationOutcome {
            AuthorizationOutcome(
                decision: .declined, authCode: nil, acquirerReference: "acq-\(request.reference)", declineCode: code)
        }
        let outcome: AuthorizationOutcome
        switch behaviour {
        case .approve(let authCode): outcome = approved(authCode)
        case .decline(let code): outcome = declined(code)
        case .fail(let code): throw AuthorizationError(code, "scripted failure")
        case .loseAnswer(let approve): outcome = approve ? approved("L0ST01") : declined("do_not_honor")
        }
        // The acquirer keeps its first decision on a reference, which a query answers.
        state.withLock { $0.decided[request.reference] = $0.decided[request.reference] ?? outcome }
        if case .loseAnswer = behaviour { throw AuthorizationError(.acquirerTimeout, "scripted lost answer") }
        return outcome
    }
}

// MARK: - Money

enum Money {
    static let eur = try! Currency("EUR")
    static let usd = try! Currency("USD")
}
