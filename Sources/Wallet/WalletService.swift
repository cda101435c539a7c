public import CardTokens
public import Foundation
public import Ledger
import SQLiteSupport
import Synchronization

/// Wallets, virtual accounts, cards on file, top-ups, transfers and statements: the rules, over
/// a ``WalletStore`` and its ``LedgerStore`` (`wallet.db` on SQLite). It sees tokens and card metadata only: this target cannot import
/// the vault (the module graph is the trust boundary), and the wallet's store holds no PAN, CVV or
/// ciphertext.
///
/// Every wallet is a ledger account flagged `debitsMustNotExceedCredits` (no overdraft). A
/// top-up moves money from the currency's acquirer-receivable account (what the acquirer owes
/// us for approved charges) to the wallet. Every mutating call takes an ``IdempotencyKey``
/// whose outcome commits together with the change it describes (see `IdempotencyRules`).
public final class WalletService: Sendable {
    let store: any WalletStore
    let cards: any CardDirectory
    let authorizer: (any CardAuthorizing)?
    let numbering: VirtualAccountNumbering
    /// The Idempotency-Key rules, shared with the other services over the same store (issuing).
    package let idempotency: IdempotencyRules
    /// Now, in whole milliseconds.
    let clock: @Sendable () -> Date
    /// Wallet id → currency and tenant. Neither ever changes, so this cache cannot go stale.
    let currencies = Mutex<[String: (currency: Currency, tenant: String)]>([:])

    /// The ledger the wallets' money is in.
    public var ledger: any LedgerStore { store.ledger }

    /// The ledger account a currency's approved top-ups are debited from.
    public static func receivableAccountID(_ currency: Currency) -> String { "acquirer_receivable:\(currency.code)" }

    /// The ledger account a currency's virtual-card holds and purchases are credited to: what the
    /// wallets owe the card network (settlement pays it out); refunds come back from it.
    public static func cardNetworkAccountID(_ currency: String) -> String { "card_network:\(currency)" }

    /// - Parameters:
    ///   - store: where wallets, cards on file, top-ups and outcomes are kept, beside the ledger.
    ///   - cards: resolves tokens to metadata (the vault, behind an adapter).
    ///   - authorizer: charges cards on file; `nil` refuses top-ups with `acquirer_not_configured`.
    ///   - numbering: the country and bank code of new virtual account numbers.
    public init(
        store: any WalletStore, cards: any CardDirectory, authorizer: (any CardAuthorizing)?,
        numbering: VirtualAccountNumbering = .default, clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.store = store
        self.cards = cards
        self.authorizer = authorizer
        self.numbering = numbering
        self.idempotency = IdempotencyRules(store: store)
        // Times as precise as the stores keep them, so that a response and its replay agree.
        self.clock = { Date(milliseconds: clock().milliseconds) }
    }

    // MARK: Wallets

    /// Creates a wallet with a new virtual account number.
    /// - Throws: `invalid_owner_ref` (also for one holding a card number), `unsupported_currency`,
    ///   `account_numbers_exhausted`, or an idempotency error.
    public func createWallet(
        ownerRef: String, currency code: String, idempotency key: IdempotencyKey,
        tenant: String = Principal.defaultTenant
    ) async throws
        -> WalletSummary
    {
        let request = Self.describe("create_wallet", ownerRef, code)
        let now = clock()
        return try await idempotency.run(key, request: request, now: now) {
            (recorder: IdempotencyRules.Recorder<WalletSummary>) in
            guard (1...128).contains(ownerRef.utf8.count), ownerRef.utf8.allSatisfy({ (32...126).contains($0) }) else {
                throw WalletError(.invalidOwnerRef, "owner_ref must be 1 to 128 printable ASCII characters")
            }
            // wallet.db is outside the card data environment: a card number must not land here.
            guard !CardNumberDetector.containsCardNumber(ownerRef) else {
                throw WalletError(.invalidOwnerRef, "owner_ref must not contain a card number")
            }
            let currency = try Self.currency(code)
            let id = RandomID.make("wal", now: now)
            let wallet = try await store.createWallet(
                NewWallet(
                    id: id, ownerRef: ownerRef, currency: currency, tenant: tenant, createdAt: now,
                    flags: .debitsMustNotExceedCredits, sharedAccounts: [Self.receivableAccountID(currency)]),
                numbering: numbering, recording: { wallet in [try recorder.write(.success(wallet))] })
            currencies.withLock { $0[id] = (currency, tenant) }
            return wallet
        }
    }

    /// The wallet `id` with its current balances.
    /// - Throws: `wallet_not_found`.
    public func wallet(_ id: String, tenant: String = Principal.defaultTenant) async throws -> WalletSummary {
        guard let found = try await store.wallet(id, tenant: tenant) else { throw WalletError.walletNotFound }
        return found
    }

    // MARK: Helpers

    /// The currency of wallet `id`, which must belong to `tenant`.
    /// - Throws: `wallet_not_found` (also for another tenant's wallet).
    package func walletCurrency(_ id: String, tenant: String) async throws -> Currency {
        var entry = currencies.withLock { $0[id] }
        if entry == nil, let stored = try await store.walletEntry(id) {
            entry = try remember(stored, of: id)
        }
        guard let entry, entry.tenant == tenant else { throw WalletError.walletNotFound }
        return entry.currency
    }

    /// Caches a wallet's entry (read by the caller) and returns it.
    @discardableResult
    func remember(_ stored: WalletEntry, of id: String) throws -> (currency: Currency, tenant: String) {
        let found = (currency: try Self.currency(stored.currency), tenant: stored.tenant)
        currencies.withLock { cache in
            if cache.count >= 100_000 { cache.removeAll(keepingCapacity: true) }
            cache[id] = found
        }
        return found
    }

    static func currency(_ code: String) throws(WalletError) -> Currency {
        do {
            return try Currency(code)
        } catch {
            throw WalletError(.unsupportedCurrency, "currency must be an ISO 4217 code the ledger knows, e.g. EUR")
        }
    }

    static func isExpired(month: Int, year: Int, now: Date) -> Bool {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let today = calendar.dateComponents([.year, .month], from: now)
        return (year, month) < (today.year ?? 0, today.month ?? 0)
    }

    /// The request an Idempotency-Key is bound to, as one unambiguous string.
    package static func describe(_ parts: String...) -> String { parts.joined(separator: "\u{1F}") }
}
