public import CardTokens
public import Foundation
import GRDB
public import Ledger
import SQLiteSupport
import Synchronization

/// Wallets, virtual accounts, cards on file, top-ups, transfers and statements, over the
/// ``Ledger`` in `wallet.db`. It sees tokens and card metadata only: this target cannot import
/// the vault (the module graph is the trust boundary), and `wallet.db` holds no PAN, CVV or
/// ciphertext.
///
/// Every wallet is a ledger account flagged `debitsMustNotExceedCredits` (no overdraft). A
/// top-up moves money from the currency's acquirer-receivable account (what the acquirer owes
/// us for approved charges) to the wallet. Every mutating call takes an ``IdempotencyKey``
/// whose outcome commits together with the change it describes (see `IdempotencyStore`).
public final class WalletService: Sendable {
    public let ledger: Ledger
    let cards: any CardDirectory
    let authorizer: (any CardAuthorizing)?
    let numbering: VirtualAccountNumbering
    let idempotency: IdempotencyStore
    let clock: @Sendable () -> Date
    /// Wallet id → currency and tenant. Neither ever changes, so this cache cannot go stale.
    let currencies = Mutex<[String: (currency: Currency, tenant: String)]>([:])

    /// The ledger account a currency's approved top-ups are debited from.
    public static func receivableAccountID(_ currency: Currency) -> String { "acquirer_receivable:\(currency.code)" }

    /// - Parameters:
    ///   - cards: resolves tokens to metadata (the vault, behind an adapter).
    ///   - authorizer: charges cards on file; `nil` refuses top-ups with `acquirer_not_configured`.
    ///   - numbering: the country and bank code of new virtual account numbers.
    public init(
        ledger: Ledger, cards: any CardDirectory, authorizer: (any CardAuthorizing)?,
        numbering: VirtualAccountNumbering = .default, clock: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("wallet.v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE wallets (
                        id TEXT PRIMARY KEY,
                        owner_ref TEXT NOT NULL,
                        currency TEXT NOT NULL,
                        account_number TEXT NOT NULL UNIQUE,
                        created_at_ms INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX wallets_owner ON wallets(owner_ref);
                    -- AUTOINCREMENT: a sequence number, hence an account number, is never handed out twice.
                    CREATE TABLE wallet_account_numbers (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        wallet_id TEXT NOT NULL UNIQUE
                    );
                    CREATE TABLE wallet_cards (
                        id TEXT PRIMARY KEY,
                        wallet_id TEXT NOT NULL REFERENCES wallets(id),
                        token TEXT NOT NULL,
                        bin TEXT NOT NULL,
                        last4 TEXT NOT NULL,
                        brand TEXT NOT NULL,
                        exp_month INTEGER NOT NULL,
                        exp_year INTEGER NOT NULL,
                        fingerprint TEXT NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        UNIQUE (wallet_id, fingerprint)
                    ) WITHOUT ROWID;
                    CREATE INDEX wallet_cards_wallet ON wallet_cards(wallet_id, created_at_ms);
                    CREATE TABLE wallet_top_ups (
                        id TEXT PRIMARY KEY,
                        owner TEXT NOT NULL,
                        idempotency_key TEXT NOT NULL,
                        wallet_id TEXT NOT NULL REFERENCES wallets(id),
                        card_id TEXT NOT NULL REFERENCES wallet_cards(id),
                        amount INTEGER NOT NULL CHECK (amount > 0),
                        currency TEXT NOT NULL,
                        status TEXT NOT NULL CHECK (status IN ('authorizing', 'approved', 'declined', 'failed')),
                        auth_code TEXT,
                        acquirer_reference TEXT,
                        decline_code TEXT,
                        created_at_ms INTEGER NOT NULL,
                        UNIQUE (owner, idempotency_key)
                    ) WITHOUT ROWID;
                    """)
        }
        IdempotencyStore.migrate(&migrator)
        // A wallet belongs to the tenant of the API key that created it; keys of other tenants
        // find no such wallet. Wallets from before belong to the default tenant.
        migrator.registerMigration("wallet.tenants") { db in
            try db.execute(sql: "ALTER TABLE wallets ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default'")
        }
        // Cards saved before hold the vault's old global fingerprint; they are marked 0 and
        // re-read by `rescopeCardFingerprints()`. New rows are scoped to the wallet side (1).
        migrator.registerMigration("wallet.fingerprint-scope") { db in
            try db.execute(
                sql: """
                    ALTER TABLE wallet_cards ADD COLUMN fingerprint_scope INTEGER NOT NULL DEFAULT 1;
                    UPDATE wallet_cards SET fingerprint_scope = 0;
                    """)
        }
        try migrator.migrate(ledger.pool)
        self.ledger = ledger
        self.cards = cards
        self.authorizer = authorizer
        self.numbering = numbering
        self.idempotency = IdempotencyStore(pool: ledger.pool)
        self.clock = clock
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
            (recorder: IdempotencyStore.Recorder<WalletSummary>) in
            guard (1...128).contains(ownerRef.utf8.count), ownerRef.utf8.allSatisfy({ (32...126).contains($0) }) else {
                throw WalletError(.invalidOwnerRef, "owner_ref must be 1 to 128 printable ASCII characters")
            }
            // wallet.db is outside the card data environment: a card number must not land here.
            guard !CardNumberDetector.containsCardNumber(ownerRef) else {
                throw WalletError(.invalidOwnerRef, "owner_ref must not contain a card number")
            }
            let currency = try Self.currency(code)
            let id = RandomID.make("wal", now: now)
            let wallet = try await ledger.pool.write { [ledger, numbering] db -> WalletSummary in
                try db.execute(sql: "INSERT INTO wallet_account_numbers (wallet_id) VALUES (?)", arguments: [id])
                let sequence = db.lastInsertedRowID
                guard sequence <= numbering.capacity else {
                    throw WalletError(
                        .accountNumbersExhausted, "no virtual account numbers are left under this bank code")
                }
                let iban = numbering.iban(sequence: sequence)
                try db.execute(
                    sql: """
                        INSERT INTO wallets (id, owner_ref, currency, account_number, created_at_ms, tenant)
                        VALUES (?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [id, ownerRef, currency.code, iban.rawValue, now.milliseconds, tenant])
                let account = try ledger.createAccount(
                    id: id, currency: currency, flags: .debitsMustNotExceedCredits, in: db, now: now)
                _ = try ledger.createAccount(
                    id: Self.receivableAccountID(currency), currency: currency, flags: [], in: db, now: now)
                let wallet = WalletSummary(
                    id: id, ownerRef: ownerRef, currency: currency.code, accountNumber: iban,
                    balances: account.balances, createdAt: Date(milliseconds: now.milliseconds))
                try recorder.save(db, .success(wallet))
                return wallet
            }
            currencies.withLock { $0[id] = (currency, tenant) }
            return wallet
        }
    }

    /// The wallet `id` with its current balances.
    /// - Throws: `wallet_not_found`.
    public func wallet(_ id: String, tenant: String = Principal.defaultTenant) async throws -> WalletSummary {
        let found = try await ledger.pool.read { db -> WalletSummary? in
            guard
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM wallets WHERE id = ? AND tenant = ?"),
                    arguments: [id, tenant]),
                let account = try Ledger.account(db, id)
            else { return nil }
            return WalletSummary(
                id: row["id"], ownerRef: row["owner_ref"], currency: row["currency"],
                accountNumber: try IBAN(validating: row["account_number"]), balances: account.balances,
                createdAt: Date(milliseconds: row["created_at_ms"]))
        }
        guard let found else { throw WalletError.walletNotFound }
        return found
    }

    // MARK: Helpers

    /// The currency of wallet `id`, which must belong to `tenant`.
    /// - Throws: `wallet_not_found` (also for another tenant's wallet).
    func walletCurrency(_ id: String, tenant: String) async throws -> Currency {
        var entry = currencies.withLock { $0[id] }
        if entry == nil {
            let row = try await ledger.pool.read { db in
                try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT currency, tenant FROM wallets WHERE id = ?"), arguments: [id])
            }
            if let row {
                let found = (currency: try Self.currency(row["currency"]), tenant: row["tenant"] as String)
                currencies.withLock { cache in
                    if cache.count >= 100_000 { cache.removeAll(keepingCapacity: true) }
                    cache[id] = found
                }
                entry = found
            }
        }
        guard let entry, entry.tenant == tenant else { throw WalletError.walletNotFound }
        return entry.currency
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
    static func describe(_ parts: String...) -> String { parts.joined(separator: "\u{1F}") }
}
