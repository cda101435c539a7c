import CardTokens
public import Foundation
import GRDB
import GroupCommit
public import Ledger
import SQLiteSupport
public import Wallet

/// The ``IssuingStore`` on SQLite: virtual cards in `wallet.db`, beside the wallet's tables and
/// the ledger, so that a card's rows commit with the ledger's holds and the wallet's outcomes.
public final class SQLiteIssuingStore: IssuingStore {
    private let ledger: SQLiteLedger
    private var pool: DatabasePool { ledger.pool }
    /// Concurrent authorizations share one commit (one fsync), each in its own savepoint: one
    /// that fails is rolled back alone and answers its own error. In one transaction they still
    /// run one after the other, so each sees the holds and spending of those before it.
    private let authorizations: GroupCommitter<AuthorizationWork, Result<CardAuthorization, any Error>>

    /// One authorization waiting for its commit.
    private struct AuthorizationWork: Sendable {
        var request: CardAuthorizationRequest
        var id: String
        var authCode: String
        var now: Date
        var decide: @Sendable (VirtualCard, String) -> AuthorizationDecision
    }

    /// Opens the card tables in the ledger's `wallet.db`, migrating them first. The wallet's
    /// tables must exist (open ``SQLiteWalletStore`` first): cards reference wallets.
    public init(ledger: SQLiteLedger) throws {
        try Self.migrator.migrate(ledger.pool)
        self.ledger = ledger
        // A commit of at most 1,000 keeps each caller's wait short under a burst.
        authorizations = GroupCommitter(maximumItemsPerCommit: 1000) { [ledger] batch in
            try await ledger.pool.write { db in
                batch.map { work in
                    Result {
                        var outcome: CardAuthorization?
                        try db.inSavepoint {
                            outcome = try Self.authorize(
                                work.request, id: work.id, authCode: work.authCode, at: work.now,
                                decide: work.decide, ledger: ledger, in: db)
                            return .commit
                        }
                        return outcome!
                    }
                }
            }
        }
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
        try pool.readInPlace { db in try Self.card(id, in: db) }
    }

    public func cards(of walletID: String) async throws -> [VirtualCard] {
        try pool.readInPlace { db in
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

    public func storedAuthorization(reference: String, bound: String) async throws -> CardAuthorization? {
        try pool.readInPlace { db in try Self.replay(reference, bound, as: CardAuthorization.self, in: db) }
    }

    public func authorize(
        _ request: CardAuthorizationRequest, id: String, authCode: String, at now: Date,
        decide: @escaping @Sendable (VirtualCard, String) -> AuthorizationDecision
    ) async throws -> CardAuthorization {
        try await authorizations.submit([
            AuthorizationWork(request: request, id: id, authCode: authCode, now: now, decide: decide)
        ])[0].get()
    }

    /// One authorization, inside the caller's transaction (see ``authorize(_:id:authCode:at:decide:)``).
    private static func authorize(
        _ request: CardAuthorizationRequest, id: String, authCode: String, at now: Date,
        decide: @Sendable (VirtualCard, String) -> AuthorizationDecision, ledger: SQLiteLedger, in db: Database
    ) throws -> CardAuthorization {
        let bound = request.idempotentDescription
        if let stored = try Self.replay(request.networkReference, bound, as: CardAuthorization.self, in: db) {
            return stored
        }
        var outcome = CardAuthorization(
            id: id, networkReference: request.networkReference, cardID: nil, walletID: nil,
            amount: request.amount, currency: request.currency, merchant: request.merchant, approved: false,
            declineCode: .cardNotFound, limitWindow: nil, authCode: nil, createdAt: now)
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
        if let card = found, let stateDecline = AuthorizationDecision.stateDecline(of: card) {
            outcome.declineCode = stateDecline.code
        } else if var card = found, let cdeDecline = request.cdeDecline {
            // A wrong expiry or CVV on a card that could spend: counted, and the card paused
            // at the limit (VirtualCard.maximumFailedVerifications).
            card.failedVerifications += 1
            if card.failedVerifications >= VirtualCard.maximumFailedVerifications { card.state = .paused }
            try Self.store(card, in: db)
            outcome.declineCode = cdeDecline
        } else if let card = found,
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
        try db.cachedStatement(
            sql: """
                INSERT INTO card_authorizations (id, network_reference, card_id, wallet_id, amount, currency,
                    merchant_id, mcc, country, approved, decline_code, limit_window, hold_state, hold_id,
                    remaining, created_at_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(
            arguments: [
                outcome.id, outcome.networkReference, outcome.cardID, outcome.walletID, outcome.amount,
                outcome.currency, outcome.merchant.id, outcome.merchant.mcc, outcome.merchant.country,
                outcome.approved, outcome.declineCode?.rawValue, outcome.limitWindow?.rawValue,
                outcome.approved ? "pending" : nil, outcome.approved ? outcome.id : nil,
                outcome.approved ? outcome.amount : 0, now.milliseconds,
            ])
        if let cardID = outcome.cardID {
            _ = try Self.record(
                CardTransaction(
                    sequence: 0, id: outcome.id, kind: .authorization, cardID: cardID, authorizationID: outcome.id,
                    networkReference: outcome.networkReference, amount: outcome.amount, currency: outcome.currency,
                    merchant: outcome.merchant, approved: outcome.approved, declineCode: outcome.declineCode,
                    limitWindow: outcome.limitWindow, createdAt: now),
                in: db)
        }
        try Self.remember(request.networkReference, "authorization", bound, outcome, at: now, in: db)
        return outcome
    }

    public func clear(_ request: ClearingRequest, id: String, at now: Date) async throws -> CardTransaction {
        let bound = ["clearing", request.authorizationID, String(request.amount)].joined(separator: "\u{1F}")
        return try await pool.write { [ledger] db in
            if let stored = try Self.replay(request.networkReference, bound, as: CardTransaction.self, in: db) {
                return stored
            }
            let hold = try Self.openHold(request.authorizationID, in: db)
            guard request.amount <= hold.remaining else {
                throw WalletError(.amountExceedsAuthorization, "the clearing exceeds what the authorization holds")
            }
            try Self.release(
                hold, by: request.amount,
                booking: TransferRequest(
                    id: id, debitAccountID: hold.walletID,
                    creditAccountID: WalletService.cardNetworkAccountID(hold.currency), amount: request.amount),
                ledger: ledger, in: db)
            let cleared = try Self.record(
                CardTransaction(
                    sequence: 0, id: id, kind: .clearing, cardID: hold.cardID, authorizationID: hold.id,
                    networkReference: request.networkReference, amount: request.amount, currency: hold.currency,
                    merchant: nil, approved: nil, declineCode: nil, limitWindow: nil, createdAt: now),
                in: db)
            try Self.remember(request.networkReference, "clearing", bound, cleared, at: now, in: db)
            return cleared
        }
    }

    public func reverse(_ request: ReversalRequest, id: String, at now: Date) async throws -> CardTransaction {
        let bound = ["reversal", request.authorizationID, request.amount.map(String.init) ?? "all"]
            .joined(separator: "\u{1F}")
        return try await pool.write { [ledger] db in
            if let stored = try Self.replay(request.networkReference, bound, as: CardTransaction.self, in: db) {
                return stored
            }
            let hold = try Self.openHold(request.authorizationID, in: db)
            let amount = request.amount ?? hold.remaining
            guard amount <= hold.remaining else {
                throw WalletError(.amountExceedsAuthorization, "the reversal exceeds what the authorization holds")
            }
            try Self.release(hold, by: amount, booking: nil, ledger: ledger, in: db)
            try Self.giveBack(amount, of: hold, now: now, in: db)
            let reversed = try Self.record(
                CardTransaction(
                    sequence: 0, id: id, kind: .reversal, cardID: hold.cardID, authorizationID: hold.id,
                    networkReference: request.networkReference, amount: amount, currency: hold.currency,
                    merchant: nil, approved: nil, declineCode: nil, limitWindow: nil, createdAt: now),
                in: db)
            try Self.remember(request.networkReference, "reversal", bound, reversed, at: now, in: db)
            return reversed
        }
    }

    public func refund(_ request: RefundRequest, id: String, at now: Date) async throws -> CardTransaction {
        let bound = [
            "refund", request.cardID, request.authorizationID, String(request.amount), request.currency,
            request.merchant.id, request.merchant.name, request.merchant.mcc, request.merchant.country,
        ].joined(separator: "\u{1F}")
        return try await pool.write { [ledger] db in
            if let stored = try Self.replay(request.networkReference, bound, as: CardTransaction.self, in: db) {
                return stored
            }
            // Only what was cleared can come back, once: the network account is never debited
            // for money no purchase put there.
            guard
                let purchase = try Row.fetchOne(
                    db.cachedStatement(
                        sql: """
                            SELECT wallet_id, currency, cleared, refunded FROM card_authorizations
                            WHERE id = ? AND card_id = ? AND approved = 1
                            """),
                    arguments: [request.authorizationID, request.cardID])
            else { throw WalletError(.authorizationNotFound, "no approved authorization of this card with this id") }
            let walletID: String = purchase["wallet_id"]
            let currency: String = purchase["currency"]
            let cleared: Int64 = purchase["cleared"]
            let refunded: Int64 = purchase["refunded"]
            guard currency == request.currency else {
                throw WalletError(.currencyMismatch, "the purchase was in another currency")
            }
            guard request.amount <= cleared - refunded else {
                throw WalletError(
                    .amountExceedsAuthorization, "the refund exceeds what was cleared and not yet refunded")
            }
            let result = try ledger.createTransfers(
                [
                    TransferRequest(
                        id: id, debitAccountID: WalletService.cardNetworkAccountID(currency), creditAccountID: walletID,
                        amount: request.amount)
                ],
                in: db)[0]
            if case .failed(let error) = result { throw error }
            try db.execute(
                sql: "UPDATE card_authorizations SET refunded = refunded + ? WHERE id = ?",
                arguments: [request.amount, request.authorizationID])
            let recorded = try Self.record(
                CardTransaction(
                    sequence: 0, id: id, kind: .refund, cardID: request.cardID,
                    authorizationID: request.authorizationID, networkReference: request.networkReference,
                    amount: request.amount, currency: currency, merchant: request.merchant, approved: nil,
                    declineCode: nil, limitWindow: nil, createdAt: now),
                in: db)
            try Self.remember(request.networkReference, "refund", bound, recorded, at: now, in: db)
            return recorded
        }
    }

    public func expireHolds(approvedBefore cutoff: Date, at now: Date) async throws -> Int {
        try await pool.write { [ledger] db in
            let due = try String.fetchAll(
                db,
                sql: "SELECT id FROM card_authorizations WHERE hold_state = 'pending' AND created_at_ms < ? LIMIT 1000",
                arguments: [cutoff.milliseconds])
            for authorizationID in due {
                let hold = try Self.openHold(authorizationID, in: db)
                try Self.release(hold, by: hold.remaining, booking: nil, ledger: ledger, in: db, expired: true)
                try Self.giveBack(hold.remaining, of: hold, now: now, in: db)
                _ = try Self.record(
                    CardTransaction(
                        sequence: 0, id: hold.id + ".expiry", kind: .expiry, cardID: hold.cardID,
                        authorizationID: hold.id, networkReference: nil, amount: hold.remaining,
                        currency: hold.currency, merchant: nil, approved: nil, declineCode: nil, limitWindow: nil,
                        createdAt: now),
                    in: db)
            }
            return due.count
        }
    }

    public func transactions(of cardID: String, after sequence: Int64, limit: Int) async throws -> [CardTransaction] {
        try pool.readInPlace { db in
            try Row.fetchAll(
                db, sql: "SELECT seq, body FROM card_transactions WHERE card_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                arguments: [cardID, sequence, limit]
            ).map { row in
                var transaction = try Self.decoder.decode(CardTransaction.self, from: row["body"] as Data)
                transaction.sequence = row["seq"]
                return transaction
            }
        }
    }

    // MARK: Holds

    /// What an approved authorization still holds.
    struct Hold {
        var id: String
        var cardID: String
        var walletID: String
        var currency: String
        /// The ledger's pending transfer that holds `remaining`.
        var holdID: String
        var remaining: Int64
        var cleared: Int64
        var approvedAt: Date
    }

    /// The hold of authorization `id`, which must be approved and not yet fully released.
    private static func openHold(_ id: String, in db: Database) throws -> Hold {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT * FROM card_authorizations WHERE id = ? AND approved = 1"),
                arguments: [id])
        else { throw WalletError(.authorizationNotFound, "no approved authorization with this id") }
        guard row["hold_state"] == "pending", let holdID = row["hold_id"] as String? else {
            throw WalletError(.authorizationReleased, "the authorization's hold is already released")
        }
        return Hold(
            id: id, cardID: row["card_id"], walletID: row["wallet_id"], currency: row["currency"], holdID: holdID,
            remaining: row["remaining"], cleared: row["cleared"], approvedAt: Date(milliseconds: row["created_at_ms"]))
    }

    /// Releases `amount` of `hold` in one linked chain: the ledger's hold is voided, `booking` (a
    /// clearing) moves its amount, and what is left is held again under a new hold id. Each hold
    /// is released exactly once: a voided hold cannot be voided again (the ledger refuses it),
    /// and the row's state and hold id move with the chain in the same transaction.
    private static func release(
        _ hold: Hold, by amount: Int64, booking: TransferRequest?, ledger: SQLiteLedger, in db: Database,
        expired: Bool = false
    ) throws {
        precondition(amount >= 0 && amount <= hold.remaining)
        let rest = hold.remaining - amount
        let generation = (hold.holdID.split(separator: ".").last.flatMap { Int($0) } ?? 0) + 1
        let nextHold = "\(hold.id).\(generation)"
        var chain = [
            TransferRequest(
                id: hold.holdID + ":void", debitAccountID: hold.walletID,
                creditAccountID: WalletService.cardNetworkAccountID(hold.currency), amount: 0,
                kind: .void(pendingID: hold.holdID))
        ]
        if let booking { chain.append(booking) }
        if rest > 0 {
            chain.append(
                TransferRequest(
                    id: nextHold, debitAccountID: hold.walletID,
                    creditAccountID: WalletService.cardNetworkAccountID(hold.currency), amount: rest,
                    kind: .pending(expiresAt: nil)))
        }
        for index in chain.indices.dropLast() { chain[index].linked = true }
        for result in try ledger.createTransfers(chain, in: db) {
            if case .failed(let error) = result { throw error }
        }
        let cleared = hold.cleared + (booking?.amount ?? 0)
        let state = rest > 0 ? "pending" : cleared > 0 ? "cleared" : expired ? "expired" : "reversed"
        try db.execute(
            sql: "UPDATE card_authorizations SET hold_state = ?, hold_id = ?, remaining = ?, cleared = ? WHERE id = ?",
            arguments: [state, rest > 0 ? nextHold : nil, rest, cleared, hold.id])
    }

    /// Takes `amount`, given back by a reversal or an expiry, off the card's spend counters.
    private static func giveBack(_ amount: Int64, of hold: Hold, now: Date, in db: Database) throws {
        guard amount > 0, var card = try card(hold.cardID, in: db) else { return }
        card.spent = card.spent.subtracting(amount, spentAt: hold.approvedAt)
        try store(card, in: db)
    }

    // MARK: Network messages

    /// The outcome stored under `reference`, if any.
    /// - Throws: `network_reference_reused` if it was stored for another request.
    private static func replay<T: Decodable>(
        _ reference: String, _ bound: String, as type: T.Type, in db: Database
    )
        throws -> T?
    {
        guard
            let stored = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT request, outcome FROM network_messages WHERE reference = ?"),
                arguments: [reference])
        else { return nil }
        guard stored["request"] == bound else {
            throw WalletError(.networkReferenceReused, "this network reference came before with other fields")
        }
        return try decoder.decode(T.self, from: stored["outcome"] as Data)
    }

    private static func remember(
        _ reference: String, _ kind: String, _ bound: String, _ outcome: some Encodable, at now: Date, in db: Database
    ) throws {
        try db.cachedStatement(
            sql:
                "INSERT INTO network_messages (reference, kind, request, outcome, created_at_ms) VALUES (?, ?, ?, ?, ?)"
        ).execute(arguments: [reference, kind, bound, try encoder.encode(outcome), now.milliseconds])
    }

    /// Appends `transaction` to its card's history; returns it with its sequence.
    private static func record(_ transaction: CardTransaction, in db: Database) throws -> CardTransaction {
        try db.cachedStatement(
            sql: "INSERT INTO card_transactions (id, card_id, body, created_at_ms) VALUES (?, ?, ?, ?)"
        ).execute(
            arguments: [
                transaction.id, transaction.cardID, try encoder.encode(transaction), transaction.createdAt.milliseconds,
            ])
        var recorded = transaction
        recorded.sequence = db.lastInsertedRowID
        return recorded
    }

    /// Writes a card's changeable fields.
    private static func store(_ card: VirtualCard, in db: Database) throws {
        try db.cachedStatement(
            sql: """
                UPDATE virtual_cards SET state = ?, controls = ?, locked_merchant = ?, spent_day = ?,
                    spent_day_amount = ?, spent_month = ?, spent_month_amount = ?, spent_lifetime = ?,
                    failed_verifications = ?
                WHERE id = ?
                """
        ).execute(
            arguments: [
                card.state.rawValue, try encode(card.controls), card.lockedMerchant, card.spent.day,
                card.spent.dayAmount, card.spent.month, card.spent.monthAmount, card.spent.lifetime,
                card.failedVerifications, card.id,
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
            failedVerifications: row["failed_verifications"],
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
                        -- The ledger's pending transfer that holds `remaining` (while pending).
                        hold_id TEXT,
                        remaining INTEGER NOT NULL CHECK (remaining >= 0),
                        cleared INTEGER NOT NULL DEFAULT 0 CHECK (cleared >= 0),
                        refunded INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= cleared),
                        created_at_ms INTEGER NOT NULL,
                        CHECK ((hold_state = 'pending') = (hold_id IS NOT NULL)),
                        CHECK (remaining + cleared <= amount),
                        CHECK ((approved = 1) = (hold_state IS NOT NULL)),
                        CHECK ((approved = 1) = (decline_code IS NULL))
                    ) WITHOUT ROWID;
                    CREATE INDEX card_authorizations_card ON card_authorizations(card_id, created_at_ms);
                    CREATE INDEX card_authorizations_held ON card_authorizations(hold_state, created_at_ms)
                        WHERE hold_state = 'pending';
                    -- Each card's history: authorizations, clearings, reversals, refunds, expiries.
                    CREATE TABLE card_transactions (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        id TEXT NOT NULL UNIQUE,
                        card_id TEXT NOT NULL REFERENCES virtual_cards(id),
                        body BLOB NOT NULL,
                        created_at_ms INTEGER NOT NULL
                    );
                    CREATE INDEX card_transactions_card ON card_transactions(card_id, seq);
                    """)
        }
        migrator.registerMigration("issuing.v2") { db in
            try db.execute(
                sql: """
                    ALTER TABLE virtual_cards ADD COLUMN failed_verifications INTEGER NOT NULL DEFAULT 0
                        CHECK (failed_verifications >= 0)
                    """)
        }
        return migrator
    }
}
