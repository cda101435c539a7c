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
    private let cards: any CardDirectory
    private let authorizer: (any CardAuthorizing)?
    private let numbering: VirtualAccountNumbering
    private let idempotency: IdempotencyStore
    private let clock: @Sendable () -> Date
    /// Wallet id → currency and tenant. Neither ever changes, so this cache cannot go stale.
    private let currencies = Mutex<[String: (currency: Currency, tenant: String)]>([:])

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

    // MARK: Cards on file

    /// Saves a tokenized card to a wallet. The same card (same fingerprint) saved again returns
    /// the existing entry with `created == false`; if the vault has deleted the entry's token,
    /// the entry takes the new token and expiry.
    /// - Throws: `wallet_not_found`, `token_not_found` (unknown or deleted token), `card_expired`.
    public func addCard(
        walletID: String, token: Token, idempotency key: IdempotencyKey, tenant: String = Principal.defaultTenant
    ) async throws
        -> (card: CardOnFile, created: Bool)
    {
        let request = Self.describe("add_card", walletID, token.rawValue)
        let now = clock()
        let saved = try await idempotency.run(key, request: request, now: now) {
            (recorder: IdempotencyStore.Recorder<SavedCard>) in
            _ = try await walletCurrency(walletID, tenant: tenant)
            // A token of another tenant is not found: a key can only save its own tenant's cards.
            guard let metadata = try await cards.metadata(of: token, tenant: tenant) else {
                throw WalletError(.tokenNotFound, "the vault holds no card for this token")
            }
            guard !Self.isExpired(month: metadata.expMonth, year: metadata.expYear, now: now) else {
                throw WalletError(.cardExpired, "the card has expired")
            }
            let card = CardOnFile(
                id: RandomID.make("card", now: now), walletID: walletID, token: metadata.token, bin: metadata.bin,
                last4: metadata.last4, brand: metadata.brand, expMonth: metadata.expMonth,
                expYear: metadata.expYear, fingerprint: metadata.fingerprint,
                createdAt: Date(milliseconds: now.milliseconds))
            let deadToken = try await deadToken(
                of: walletID, fingerprint: metadata.fingerprint, other: metadata.token, tenant: tenant)
            return try await ledger.pool.write { db in
                // The card is saved under a token the vault has deleted: it takes the new one, or
                // it could never be charged again.
                if let deadToken {
                    try db.execute(
                        sql: """
                            UPDATE wallet_cards SET token = ?, exp_month = ?, exp_year = ?
                            WHERE wallet_id = ? AND fingerprint = ? AND token = ?
                            """,
                        arguments: [
                            card.token.rawValue, card.expMonth, card.expYear, walletID, card.fingerprint, deadToken,
                        ])
                }
                // The unique (wallet, fingerprint) pair makes the check and the insert one step.
                try db.execute(
                    sql: """
                        INSERT INTO wallet_cards (id, wallet_id, token, bin, last4, brand, exp_month, exp_year,
                            fingerprint, created_at_ms, fingerprint_scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (wallet_id, fingerprint) DO NOTHING
                        """,
                    arguments: [
                        card.id, walletID, card.token.rawValue, card.bin, card.last4, card.brand.rawValue,
                        card.expMonth, card.expYear, card.fingerprint, now.milliseconds,
                        Self.fingerprintScope(metadata.fingerprintVersion ?? cards.fingerprintVersion),
                    ])
                let saved: SavedCard
                if db.changesCount == 1 {
                    saved = SavedCard(card: card, created: true)
                } else {
                    let row = try Row.fetchOne(
                        db, sql: "SELECT * FROM wallet_cards WHERE wallet_id = ? AND fingerprint = ?",
                        arguments: [walletID, card.fingerprint])
                    guard let row else { throw WalletError(.internalFailure, "a saved card vanished") }
                    saved = SavedCard(card: try Self.card(row), created: false)
                }
                try recorder.save(db, .success(saved))
                return saved
            }
        }
        return (saved.card, saved.created)
    }

    /// The token `walletID` holds the card `fingerprint` under, if it is not `other` and the
    /// vault no longer knows it.
    private func deadToken(
        of walletID: String, fingerprint: String, other: Token, tenant: String
    ) async throws -> String? {
        let saved = try await ledger.pool.read { db in
            try String.fetchOne(
                db, sql: "SELECT token FROM wallet_cards WHERE wallet_id = ? AND fingerprint = ?",
                arguments: [walletID, fingerprint])
        }
        guard let saved, saved != other.rawValue else { return nil }
        return try await cards.metadata(of: Token(unchecked: saved), tenant: tenant) == nil ? saved : nil
    }

    /// `wallet_cards.fingerprint_scope` of a fingerprint made under the vault's root-key version
    /// `version`: 0 marks the unscoped fingerprints of before docs/CRYPTO.md §8.1, and scope
    /// `v + 1` a caller fingerprint derived under root version `v` (§13.9).
    static func fingerprintScope(_ version: UInt32) -> Int64 { Int64(version) + 1 }

    /// Replaces the fingerprints of cards saved before fingerprints were scoped to the wallet
    /// side (docs/CRYPTO.md §8.1), or saved under an older root-key version than the vault's
    /// newest (§13.9), with the ones the vault now gives, so that the same card saved again is
    /// still recognised. A card the vault has not re-fingerprinted yet (`vault keys rewrap` not
    /// finished) keeps its older scope and is read again next time. A card whose token the vault
    /// no longer holds gets a value that matches nothing. Idempotent; `vault serve` runs it at
    /// start, before it serves.
    /// - Returns: how many cards were read again.
    @discardableResult
    public func rescopeCardFingerprints() async throws -> Int {
        let current = Self.fingerprintScope(cards.fingerprintVersion)
        let stale = try await ledger.pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT wallet_cards.id, wallet_cards.token, wallets.tenant FROM wallet_cards
                    JOIN wallets ON wallets.id = wallet_cards.wallet_id WHERE wallet_cards.fingerprint_scope < ?
                    """, arguments: [current]
            ).map { (id: $0["id"] as String, token: $0["token"] as String, tenant: $0["tenant"] as String) }
        }
        for card in stale {
            let metadata = try await cards.metadata(of: Token(unchecked: card.token), tenant: card.tenant)
            let scope = metadata.map { Self.fingerprintScope($0.fingerprintVersion ?? 0) } ?? current
            try await ledger.pool.write { db in
                let update = "UPDATE OR IGNORE wallet_cards SET fingerprint = ?, fingerprint_scope = ? WHERE id = ?"
                try db.execute(sql: update, arguments: [metadata?.fingerprint ?? "gone:\(card.id)", scope, card.id])
                if db.changesCount == 0 {
                    // The wallet saved the card again meanwhile under its new fingerprint.
                    try db.execute(sql: update, arguments: ["duplicate:\(card.id)", scope, card.id])
                }
            }
        }
        return stale.count
    }

    struct SavedCard: Codable, Sendable {
        var card: CardOnFile
        var created: Bool
    }

    /// The cards saved to a wallet, oldest first.
    /// - Throws: `wallet_not_found`.
    public func cards(of walletID: String, tenant: String = Principal.defaultTenant) async throws -> [CardOnFile] {
        _ = try await walletCurrency(walletID, tenant: tenant)
        return try await ledger.pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM wallet_cards WHERE wallet_id = ? ORDER BY created_at_ms, id",
                arguments: [walletID]
            ).map(Self.card)
        }
    }

    private func card(_ cardID: String, in walletID: String) async throws -> CardOnFile {
        let card = try await ledger.pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM wallet_cards WHERE id = ? AND wallet_id = ?", arguments: [cardID, walletID]
            ).map(Self.card)
        }
        guard let card else { throw WalletError(.cardNotFound, "the wallet has no card with this card_id") }
        return card
    }

    private static func card(_ row: Row) throws -> CardOnFile {
        CardOnFile(
            id: row["id"], walletID: row["wallet_id"], token: Token(unchecked: row["token"]), bin: row["bin"],
            last4: row["last4"], brand: CardBrand(rawValue: row["brand"]) ?? .unknown, expMonth: row["exp_month"],
            expYear: row["exp_year"], fingerprint: row["fingerprint"],
            createdAt: Date(milliseconds: row["created_at_ms"]))
    }

    // MARK: Top-ups

    /// Charges a card on file through the authorization gateway, as a two-phase ledger transfer
    /// from the acquirer-receivable account to the wallet: the amount is held (pending) before
    /// the acquirer is asked, then posted if it approves or voided if it declines, in the same
    /// commit that records the outcome.
    ///
    /// The top-up's id is the acquirer reference and the pending transfer's id, and it is fixed
    /// at the first attempt of an Idempotency-Key. After `acquirer_timeout` or
    /// `acquirer_unavailable` the hold stays open and nothing is stored under the key: a retry
    /// with the same key sends the same reference, the acquirer answers it with its first
    /// decision, and the hold is posted or voided exactly once.
    /// - Throws: `wallet_not_found`, `card_not_found`, `currency_mismatch`, `invalid_amount`,
    ///   `unsupported_currency`, `amount_overflow` (before any charge), `token_not_found`,
    ///   `acquirer_*`, or an idempotency error.
    /// - Parameter origin: the caller's address, for the gateway's audit record (not part of the
    ///   idempotent request: a retry may come from elsewhere).
    public func topUp(
        walletID: String, cardID: String, amount: Int64, currency code: String, idempotency key: IdempotencyKey,
        tenant: String = Principal.defaultTenant, origin: String? = nil
    ) async throws -> TopUp {
        let request = Self.describe("top_up", walletID, cardID, String(amount), code)
        let now = clock()
        return try await idempotency.run(key, request: request, now: now) {
            (recorder: IdempotencyStore.Recorder<TopUp>) in
            // A call reaches the acquirer, so an earlier outcome is replayed before anything runs.
            if let stored = try await idempotency.storedOutcome(key, request: request, as: TopUp.self) {
                return try stored.get()
            }
            guard amount > 0 else {
                throw WalletError(.invalidAmount, "amount must be a positive number of minor units")
            }
            let currency = try Self.currency(code)
            guard try await walletCurrency(walletID, tenant: tenant) == currency else {
                throw WalletError(.currencyMismatch, "the wallet does not hold this currency")
            }
            let card = try await card(cardID, in: walletID)
            guard let authorizer else {
                throw WalletError(.acquirerNotConfigured, "no acquirer is configured (vault serve --acquirer-url)")
            }
            let topUpID = try await hold(
                key, walletID: walletID, cardID: cardID, amount: amount, currency: currency, now: now,
                recorder: recorder)
            let outcome: AuthorizationOutcome
            do {
                outcome = try await authorizer.authorize(
                    AuthorizationRequest(
                        token: card.token, amount: amount, currency: currency.code, reference: topUpID,
                        requestedBy: key.owner, tenant: tenant, origin: origin))
            } catch let error as AuthorizationError {
                switch error.code {
                case .tokenNotFound:
                    // The hold is released, and the attempt's status and the stored failure commit with it.
                    let failure = WalletError(.tokenNotFound, "the card's token no longer exists in the vault")
                    _ = try await ledger.createTransfers(
                        [Self.release(topUpID, walletID: walletID, currency: currency, amount: amount, post: false)],
                        recording: { db, results in
                            try Self.requireReleased(results[0])
                            try Self.setStatus("failed", of: topUpID, in: db)
                            try recorder.save(db, .failure(failure))
                        })
                    throw IdempotencyStore.RecordedFailure(error: failure)
                case .acquirerTimeout:
                    throw WalletError(
                        .acquirerTimeout, "the acquirer did not answer in time; retry with the same Idempotency-Key")
                case .acquirerUnavailable:
                    throw WalletError(
                        .acquirerUnavailable, "the acquirer is unavailable; retry with the same Idempotency-Key")
                case .notConfigured:
                    throw WalletError(.acquirerNotConfigured, "no acquirer is configured (vault serve --acquirer-url)")
                default:
                    throw WalletError(.internalFailure, "the authorization gateway failed (\(error.code))")
                }
            } catch {
                throw WalletError(.internalFailure, "the authorization gateway failed")
            }
            let approved = outcome.decision == .approved
            let topUp = TopUp(
                id: topUpID, walletID: walletID, cardID: cardID, amount: amount, currency: currency.code,
                status: approved ? .approved : .declined, authCode: approved ? outcome.authCode : nil,
                acquirerReference: outcome.acquirerReference, declineCode: approved ? nil : outcome.declineCode,
                createdAt: Date(milliseconds: now.milliseconds))
            // Approved: the hold is posted; declined: voided. The hold already passed every balance
            // check, so posting it cannot fail on an overflow after the card was charged.
            _ = try await ledger.createTransfers(
                [Self.release(topUpID, walletID: walletID, currency: currency, amount: amount, post: approved)],
                recording: { db, results in
                    try Self.requireReleased(results[0])
                    try Self.finish(topUp, in: db)
                    try recorder.save(db, .success(topUp))
                })
            return topUp
        }
    }

    /// The id of this key's top-up attempt: on a retry the existing one, whose hold is still
    /// open; else a new attempt, with a pending transfer (receivable → wallet) for the amount
    /// committed in the same transaction. Holding before the acquirer is asked means an
    /// approval can always be booked: whatever would refuse the credit (an overflowing balance)
    /// refuses the hold, before any card is charged.
    private func hold(
        _ key: IdempotencyKey, walletID: String, cardID: String, amount: Int64, currency: Currency, now: Date,
        recorder: IdempotencyStore.Recorder<TopUp>
    ) async throws -> String {
        let existing = try await ledger.pool.read { db -> (id: String, matches: Bool)? in
            try Row.fetchOne(
                db, sql: "SELECT * FROM wallet_top_ups WHERE owner = ? AND idempotency_key = ?",
                arguments: [key.owner, key.key]
            ).map { row in
                (
                    row["id"],
                    row["wallet_id"] == walletID && row["card_id"] == cardID && row["amount"] == amount
                        && row["currency"] == currency.code
                )
            }
        }
        if let existing {
            guard existing.matches else {
                throw WalletError(
                    .idempotencyKeyReused, "this Idempotency-Key was already used with a different request")
            }
            return existing.id
        }
        let id = RandomID.make("tu", now: now)
        let results = try await ledger.createTransfers(
            [
                TransferRequest(
                    id: id, debitAccountID: Self.receivableAccountID(currency), creditAccountID: walletID,
                    amount: amount, kind: .pending(expiresAt: nil))
            ],
            recording: { db, results in
                guard results[0] == .created else { return }
                try db.execute(
                    sql: """
                        INSERT INTO wallet_top_ups (id, owner, idempotency_key, wallet_id, card_id, amount, currency,
                            status, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 'authorizing', ?)
                        """,
                    arguments: [id, key.owner, key.key, walletID, cardID, amount, currency.code, now.milliseconds])
            })
        if case .failed(let error) = results[0] {
            try await idempotency.saveFailure(Self.walletError(error), with: recorder)
        }
        return id
    }

    /// The transfer that posts (approved) or voids (declined, token gone) a top-up's hold.
    private static func release(
        _ topUpID: String, walletID: String, currency: Currency, amount: Int64, post: Bool
    ) -> TransferRequest {
        TransferRequest(
            id: topUpID + (post ? ":post" : ":void"), debitAccountID: receivableAccountID(currency),
            creditAccountID: walletID, amount: amount,
            kind: post ? .post(pendingID: topUpID) : .void(pendingID: topUpID))
    }

    private static func requireReleased(_ result: TransferResult) throws {
        guard result == .created || result == .exists else {
            throw WalletError(.internalFailure, "a top-up's hold could not be released")
        }
    }

    private static func setStatus(_ status: String, of topUpID: String, in db: Database) throws {
        try db.execute(sql: "UPDATE wallet_top_ups SET status = ? WHERE id = ?", arguments: [status, topUpID])
    }

    private static func finish(_ topUp: TopUp, in db: Database) throws {
        try db.execute(
            sql: """
                UPDATE wallet_top_ups SET status = ?, auth_code = ?, acquirer_reference = ?, decline_code = ?
                WHERE id = ? AND status = 'authorizing'
                """,
            arguments: [
                topUp.status.rawValue, topUp.authCode, topUp.acquirerReference, topUp.declineCode, topUp.id,
            ])
    }

    // MARK: Transfers

    /// Moves `amount` from one wallet to another of the same currency, at once.
    /// - Throws: `wallet_not_found`, `same_wallet`, `currency_mismatch`, `invalid_amount`,
    ///   `unsupported_currency`, `insufficient_funds`, `amount_overflow`, or an idempotency error.
    public func transfer(
        from source: String, to destination: String, amount: Int64, currency code: String,
        idempotency key: IdempotencyKey, tenant: String = Principal.defaultTenant
    ) async throws -> WalletTransfer {
        let request = Self.describe("transfer", source, destination, String(amount), code)
        let now = clock()
        return try await idempotency.run(key, request: request, now: now) {
            (recorder: IdempotencyStore.Recorder<WalletTransfer>) in
            guard amount > 0 else {
                throw WalletError(.invalidAmount, "amount must be a positive number of minor units")
            }
            let currency = try Self.currency(code)
            guard source != destination else { throw WalletError(.sameWallet, "from_wallet and to_wallet must differ") }
            for wallet in [source, destination] where try await walletCurrency(wallet, tenant: tenant) != currency {
                throw WalletError(.currencyMismatch, "a wallet of the transfer does not hold this currency")
            }
            let transfer = WalletTransfer(
                id: RandomID.make("tr", now: now), fromWallet: source, toWallet: destination, amount: amount,
                currency: currency.code, createdAt: Date(milliseconds: now.milliseconds))
            let success = try recorder.encode(.success(transfer))
            let results = try await ledger.createTransfers(
                [
                    TransferRequest(
                        id: transfer.id, debitAccountID: source, creditAccountID: destination, amount: amount)
                ],
                recording: { db, results in
                    switch results[0] {
                    case .created, .exists: try recorder.save(db, encoded: success)
                    case .failed(let error): try recorder.save(db, .failure(Self.walletError(error)))
                    }
                })
            if case .failed(let error) = results[0] {
                throw IdempotencyStore.RecordedFailure(error: Self.walletError(error))
            }
            return transfer
        }
    }

    // MARK: Retention

    /// Forgets the Idempotency-Key outcomes stored before `cutoff` (``IdempotencyStore``); returns
    /// how many. A request retried under a forgotten key runs again as a new request, except a
    /// top-up: its attempt keeps the key, so a retry re-sends the same acquirer reference, gets
    /// the acquirer's first answer and books nothing twice.
    @discardableResult
    public func purgeIdempotencyOutcomes(before cutoff: Date) async throws -> Int {
        try await idempotency.purge(before: cutoff)
    }

    private static func walletError(_ error: LedgerError) -> WalletError {
        switch error.code {
        case .insufficientFunds: WalletError(.insufficientFunds, "the source wallet has insufficient funds")
        case .overflow: WalletError(.amountOverflow, "the amount would overflow a balance")
        case .accountNotFound: WalletError.walletNotFound
        case .currencyMismatch: WalletError(.currencyMismatch, "the wallets hold different currencies")
        case .invalidAmount: WalletError(.invalidAmount, "amount must be a positive number of minor units")
        default: WalletError(.internalFailure, "the ledger refused the transfer (\(error.code))")
        }
    }

    // MARK: Statements

    /// A wallet's statement, oldest first, after ledger sequence `after`; `nextAfter` is the
    /// cursor of the next page, `nil` on the last.
    /// - Throws: `wallet_not_found`, `invalid_cursor`.
    public func transactions(
        of walletID: String, after: Int64 = 0, limit: Int = 100, tenant: String = Principal.defaultTenant
    ) async throws
        -> (entries: [StatementEntry], nextAfter: Int64?)
    {
        guard after >= 0, (1...1000).contains(limit) else {
            throw WalletError(.invalidCursor, "after must be ≥ 0 and limit 1 to 1000")
        }
        _ = try await walletCurrency(walletID, tenant: tenant)
        // Only money that moved is listed: single transfers and posted holds (a top-up's hold and
        // its void are not movements; a posted hold shows under the top-up's id). Ledger rows are
        // read in chunks until the page is full and one more entry shows that another follows.
        var entries = [StatementEntry]()
        var cursor = after
        var more = false
        scan: while true {
            let chunk = try await ledger.transfers(of: walletID, after: cursor, limit: limit + 1)
            for (sequence, transfer) in chunk {
                cursor = sequence
                guard let entry = Self.entry(sequence, transfer, of: walletID) else { continue }
                guard entries.count < limit else {
                    more = true
                    break scan
                }
                entries.append(entry)
            }
            if chunk.count <= limit { break }
        }
        return (entries, more ? entries.last?.sequence : nil)
    }

    private static func entry(_ sequence: Int64, _ transfer: Transfer, of walletID: String) -> StatementEntry? {
        guard transfer.kind == "single" || transfer.kind == "post" else { return nil }
        let outgoing = transfer.debitAccountID == walletID
        let kind: StatementEntry.Kind =
            outgoing ? .transferOut : transfer.debitAccountID.hasPrefix("acquirer_receivable:") ? .topUp : .transferIn
        return StatementEntry(
            sequence: sequence, id: transfer.kind == "post" ? transfer.pendingID ?? transfer.id : transfer.id,
            kind: kind, amount: outgoing ? -transfer.amount : transfer.amount, currency: transfer.currency.code,
            counterpartyWallet: kind == .topUp ? nil : outgoing ? transfer.creditAccountID : transfer.debitAccountID,
            createdAt: transfer.createdAt)
    }

    // MARK: Helpers

    /// The currency of wallet `id`, which must belong to `tenant`.
    /// - Throws: `wallet_not_found` (also for another tenant's wallet).
    private func walletCurrency(_ id: String, tenant: String) async throws -> Currency {
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

    private static func currency(_ code: String) throws(WalletError) -> Currency {
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
    private static func describe(_ parts: String...) -> String { parts.joined(separator: "\u{1F}") }
}
