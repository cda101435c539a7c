public import CardTokens
public import Foundation
import GRDB
public import Ledger
import SQLiteSupport
public import Wallet

/// The ``IssuingStore`` on SQLite: virtual cards in `wallet.db`, beside the wallet's tables and
/// the ledger, so that a card's rows commit with the ledger's holds and the wallet's outcomes.
public final class SQLiteIssuingStore: IssuingStore {
    private let ledger: SQLiteLedger
    private var pool: DatabasePool { ledger.pool }

    /// Opens the card tables in the ledger's `wallet.db`, migrating them first. The wallet's
    /// tables must exist (open ``SQLiteWalletStore`` first): cards reference wallets.
    public init(ledger: SQLiteLedger) throws {
        try Self.migrator.migrate(ledger.pool)
        self.ledger = ledger
    }

    public func insert(
        _ card: VirtualCard, recording: @escaping @Sendable (VirtualCard) throws -> [WalletWrite]
    ) async throws {
        try await pool.write { db in
            try db.execute(
                sql: """
                    INSERT INTO virtual_cards (id, wallet_id, tenant, token, bin, last4, brand, exp_month, exp_year,
                        kind, state, controls, locked_merchant, spent_day, spent_day_amount, spent_month,
                        spent_month_amount, spent_lifetime, created_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    card.id, card.walletID, card.tenant, card.token.rawValue, card.bin, card.last4,
                    card.brand.rawValue, card.expMonth, card.expYear, card.kind.rawValue, card.state.rawValue,
                    try Self.encode(card.controls), card.lockedMerchant, card.spent.day, card.spent.dayAmount,
                    card.spent.month, card.spent.monthAmount, card.spent.lifetime, card.createdAt.milliseconds,
                ])
            try SQLiteWalletStore.apply(recording(card), in: db)
        }
    }

    public func card(_ id: String) async throws -> VirtualCard? {
        try await pool.read { db in try Self.card(id, in: db) }
    }

    public func cards(of walletID: String) async throws -> [VirtualCard] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM virtual_cards WHERE wallet_id = ? ORDER BY created_at_ms, id",
                arguments: [walletID]
            ).map(Self.card)
        }
    }

    public func update(
        _ id: String, change: @escaping @Sendable (VirtualCard) throws -> VirtualCard,
        recording: @escaping @Sendable (VirtualCard) throws -> [WalletWrite]
    ) async throws -> VirtualCard? {
        try await pool.write { db in
            guard let current = try Self.card(id, in: db) else { return nil }
            let changed = try change(current)
            precondition(changed.id == current.id && changed.token == current.token, "a change kept its card")
            try Self.store(changed, in: db)
            try SQLiteWalletStore.apply(recording(changed), in: db)
            return changed
        }
    }

    public func card(token: Token) async throws -> VirtualCard? {
        try await pool.read { db in
            try Row.fetchOne(
                db.cachedStatement(sql: "SELECT * FROM virtual_cards WHERE token = ?"), arguments: [token.rawValue]
            ).map(Self.card)
        }
    }

    public func authorize(
        _ request: CardAuthorizationRequest, id: String, authCode: String, at now: Date,
        decide: @escaping @Sendable (VirtualCard, String) -> AuthorizationDecision
    ) async throws -> CardAuthorization {
        try await pool.write { [ledger] db in
            let bound = request.idempotentDescription
            if let stored = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT request, outcome FROM network_messages WHERE reference = ?"),
                arguments: [request.networkReference])
            {
                guard stored["request"] == bound else { throw NetworkReferenceReused() }
                return try Self.decoder.decode(CardAuthorization.self, from: stored["outcome"] as Data)
            }
            var outcome = CardAuthorization(
                id: id, networkReference: request.networkReference, cardID: nil, walletID: nil,
                amount: request.amount, currency: request.currency, merchant: request.merchant, approved: false,
                declineCode: request.cdeDecline ?? .cardNotFound, limitWindow: nil, authCode: nil, createdAt: now)
            let found = try request.token.flatMap { token in
                try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM virtual_cards WHERE token = ?"),
                    arguments: [token.rawValue]
                ).map(Self.card)
            }
            if let card = found {
                outcome.cardID = card.id
                outcome.walletID = card.walletID
            }
            if let card = found, request.cdeDecline == nil,
                let walletCurrency = try String.fetchOne(
                    db.cachedStatement(sql: "SELECT currency FROM wallets WHERE id = ?"), arguments: [card.walletID])
            {
                switch decide(card, walletCurrency) {
                case .decline(let decline):
                    outcome.declineCode = decline.code
                    outcome.limitWindow = decline.window
                case .approve(let changed):
                    let currency = try Currency(walletCurrency)
                    let network = WalletService.cardNetworkAccountID(walletCurrency)
                    _ = try ledger.createAccount(id: network, currency: currency, flags: [], in: db, now: now)
                    let hold = TransferRequest(
                        id: id, debitAccountID: card.walletID, creditAccountID: network, amount: request.amount,
                        kind: .pending(expiresAt: nil))
                    switch try ledger.createTransfers([hold], in: db)[0] {
                    case .created:
                        try Self.store(changed, in: db)
                        outcome.approved = true
                        outcome.declineCode = nil
                        outcome.authCode = authCode
                    case .failed(let error) where error.code == .insufficientFunds || error.code == .overflow:
                        outcome.declineCode = .insufficientFunds
                    case .failed(let error):
                        throw error
                    case .exists:
                        throw WalletError(.internalFailure, "an authorization id was used twice")
                    }
                }
            }
            try db.execute(
                sql: """
                    INSERT INTO card_authorizations (id, network_reference, card_id, wallet_id, amount, currency,
                        merchant_id, mcc, country, approved, decline_code, limit_window, hold_state, created_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    outcome.id, outcome.networkReference, outcome.cardID, outcome.walletID, outcome.amount,
                    outcome.currency, outcome.merchant.id, outcome.merchant.mcc, outcome.merchant.country,
                    outcome.approved, outcome.declineCode?.rawValue, outcome.limitWindow?.rawValue,
                    outcome.approved ? "pending" : nil, now.milliseconds,
                ])
            try db.execute(
                sql: """
                    INSERT INTO network_messages (reference, kind, request, outcome, created_at_ms)
                    VALUES (?, 'authorization', ?, ?, ?)
                    """,
                arguments: [request.networkReference, bound, try Self.encoder.encode(outcome), now.milliseconds])
            return outcome
        }
    }

    /// Writes a card's changeable fields.
    private static func store(_ card: VirtualCard, in db: Database) throws {
        try db.execute(
            sql: """
                UPDATE virtual_cards SET state = ?, controls = ?, locked_merchant = ?, spent_day = ?,
                    spent_day_amount = ?, spent_month = ?, spent_month_amount = ?, spent_lifetime = ?
                WHERE id = ?
                """,
            arguments: [
                card.state.rawValue, try encode(card.controls), card.lockedMerchant, card.spent.day,
                card.spent.dayAmount, card.spent.month, card.spent.monthAmount, card.spent.lifetime, card.id,
            ])
    }

    private static func card(_ id: String, in db: Database) throws -> VirtualCard? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM virtual_cards WHERE id = ?"), arguments: [id])
            .map(card)
    }

    private static func card(_ row: Row) throws -> VirtualCard {
        guard let kind = VirtualCard.Kind(rawValue: row["kind"]), let state = VirtualCard.State(rawValue: row["state"])
        else { throw WalletError(.internalFailure, "a virtual card row holds an unknown kind or state") }
        return VirtualCard(
            id: row["id"], walletID: row["wallet_id"], tenant: row["tenant"], token: Token(unchecked: row["token"]),
            bin: row["bin"], last4: row["last4"], brand: CardBrand(rawValue: row["brand"]) ?? .unknown,
            expMonth: row["exp_month"], expYear: row["exp_year"], kind: kind, state: state,
            controls: try decoder.decode(SpendControls.self, from: row["controls"] as Data),
            lockedMerchant: row["locked_merchant"],
            spent: SpendCounters(
                day: row["spent_day"], dayAmount: row["spent_day_amount"], month: row["spent_month"],
                monthAmount: row["spent_month_amount"], lifetime: row["spent_lifetime"]),
            createdAt: Date(milliseconds: row["created_at_ms"]))
    }

    // Controls are read and written whole, never queried by field: one JSON column.
    private static let encoder = JSONEncoder()
    private static let decoder = JSONDecoder()

    private static func encode(_ controls: SpendControls) throws -> Data { try encoder.encode(controls) }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("issuing.v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE virtual_cards (
                        id TEXT PRIMARY KEY,
                        wallet_id TEXT NOT NULL REFERENCES wallets(id),
                        tenant TEXT NOT NULL,
                        token TEXT NOT NULL UNIQUE,
                        bin TEXT NOT NULL,
                        last4 TEXT NOT NULL,
                        brand TEXT NOT NULL,
                        exp_month INTEGER NOT NULL,
                        exp_year INTEGER NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('multi_use', 'single_use', 'merchant_locked')),
                        state TEXT NOT NULL CHECK (state IN ('inactive', 'active', 'paused', 'closed')),
                        controls BLOB NOT NULL,
                        locked_merchant TEXT,
                        spent_day INTEGER NOT NULL,
                        spent_day_amount INTEGER NOT NULL CHECK (spent_day_amount >= 0),
                        spent_month INTEGER NOT NULL,
                        spent_month_amount INTEGER NOT NULL CHECK (spent_month_amount >= 0),
                        spent_lifetime INTEGER NOT NULL CHECK (spent_lifetime >= 0),
                        created_at_ms INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX virtual_cards_wallet ON virtual_cards(wallet_id, created_at_ms);
                    -- Every network message by its reference: a retry replays the stored outcome.
                    CREATE TABLE network_messages (
                        reference TEXT PRIMARY KEY,
                        kind TEXT NOT NULL,
                        request TEXT NOT NULL,
                        outcome BLOB NOT NULL,
                        created_at_ms INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    -- Approved and declined authorizations; an approval's hold is the ledger
                    -- transfer with the same id, and hold_state follows it.
                    CREATE TABLE card_authorizations (
                        id TEXT PRIMARY KEY,
                        network_reference TEXT NOT NULL UNIQUE,
                        card_id TEXT REFERENCES virtual_cards(id),
                        wallet_id TEXT REFERENCES wallets(id),
                        amount INTEGER NOT NULL CHECK (amount > 0),
                        currency TEXT NOT NULL,
                        merchant_id TEXT NOT NULL,
                        mcc TEXT NOT NULL,
                        country TEXT NOT NULL,
                        approved INTEGER NOT NULL,
                        decline_code TEXT,
                        limit_window TEXT,
                        hold_state TEXT CHECK (hold_state IN ('pending', 'cleared', 'reversed', 'expired')),
                        created_at_ms INTEGER NOT NULL,
                        CHECK ((approved = 1) = (hold_state IS NOT NULL)),
                        CHECK ((approved = 1) = (decline_code IS NULL))
                    ) WITHOUT ROWID;
                    CREATE INDEX card_authorizations_card ON card_authorizations(card_id, created_at_ms);
                    """)
        }
        return migrator
    }
}
