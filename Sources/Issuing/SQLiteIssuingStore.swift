import CardTokens
import Foundation
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
            try db.execute(
                sql: """
                    UPDATE virtual_cards SET state = ?, controls = ?, locked_merchant = ?, spent_day = ?,
                        spent_day_amount = ?, spent_month = ?, spent_month_amount = ?, spent_lifetime = ?
                    WHERE id = ?
                    """,
                arguments: [
                    changed.state.rawValue, try Self.encode(changed.controls), changed.lockedMerchant,
                    changed.spent.day, changed.spent.dayAmount, changed.spent.month, changed.spent.monthAmount,
                    changed.spent.lifetime, id,
                ])
            try SQLiteWalletStore.apply(recording(changed), in: db)
            return changed
        }
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
                    """)
        }
        return migrator
    }
}
