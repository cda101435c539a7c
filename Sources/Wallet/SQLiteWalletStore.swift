public import CardTokens
public import Foundation
package import GRDB
public import Ledger
import SQLiteSupport

/// The ``WalletStore`` on SQLite: the wallet's tables in `wallet.db`, beside the ledger's, so
/// that a wallet's rows commit in the ledger's (group) commits.
public final class SQLiteWalletStore: WalletStore {
    private let sqliteLedger: SQLiteLedger
    private var pool: DatabasePool { sqliteLedger.pool }

    public var ledger: any LedgerStore { sqliteLedger }

    /// Opens the wallet's tables in the ledger's `wallet.db`, migrating them first.
    public init(ledger: SQLiteLedger) throws {
        try Self.migrator.migrate(ledger.pool)
        self.sqliteLedger = ledger
    }

    // MARK: Wallets

    public func createWallet(
        _ wallet: NewWallet, numbering: VirtualAccountNumbering,
        recording: @escaping @Sendable (WalletSummary) throws -> [WalletWrite]
    ) async throws -> WalletSummary {
        try await pool.write { [sqliteLedger] db -> WalletSummary in
            try db.execute(sql: "INSERT INTO wallet_account_numbers (wallet_id) VALUES (?)", arguments: [wallet.id])
            let sequence = db.lastInsertedRowID
            guard sequence <= numbering.capacity else {
                throw WalletError(.accountNumbersExhausted, "no virtual account numbers are left under this bank code")
            }
            let iban = numbering.iban(sequence: sequence)
            try db.execute(
                sql: """
                    INSERT INTO wallets (id, owner_ref, currency, account_number, created_at_ms, tenant)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    wallet.id, wallet.ownerRef, wallet.currency.code, iban.rawValue, wallet.createdAt.milliseconds,
                    wallet.tenant,
                ])
            let account = try sqliteLedger.createAccount(
                id: wallet.id, currency: wallet.currency, flags: wallet.flags, in: db, now: wallet.createdAt)
            for shared in wallet.sharedAccounts {
                _ = try sqliteLedger.createAccount(
                    id: shared, currency: wallet.currency, flags: [], in: db, now: wallet.createdAt)
            }
            let summary = WalletSummary(
                id: wallet.id, ownerRef: wallet.ownerRef, currency: wallet.currency.code, accountNumber: iban,
                balances: account.balances, createdAt: Date(milliseconds: wallet.createdAt.milliseconds))
            try Self.apply(recording(summary), in: db)
            return summary
        }
    }

    public func wallet(_ id: String, tenant: String) async throws -> WalletSummary? {
        try pool.readInPlace { db -> WalletSummary? in
            guard
                let row = try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM wallets WHERE id = ? AND tenant = ?"),
                    arguments: [id, tenant]),
                let account = try SQLiteLedger.account(db, id)
            else { return nil }
            return WalletSummary(
                id: row["id"], ownerRef: row["owner_ref"], currency: row["currency"],
                accountNumber: try IBAN(validating: row["account_number"]), balances: account.balances,
                createdAt: Date(milliseconds: row["created_at_ms"]))
        }
    }

    public func walletEntry(_ id: String) async throws -> WalletEntry? {
        try pool.readInPlace { db in try Self.walletEntry(id, in: db) }
    }

    private static func walletEntry(_ id: String, in db: Database) throws -> WalletEntry? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT currency, tenant FROM wallets WHERE id = ?"), arguments: [id]
        ).map { WalletEntry(currency: $0["currency"], tenant: $0["tenant"]) }
    }

    // MARK: Cards on file

    public func saveCard(
        _ card: CardOnFile, fingerprintScope: Int64, replacingToken: String?,
        recording: @escaping @Sendable (CardOnFile, Bool) throws -> [WalletWrite]
    ) async throws -> (card: CardOnFile, created: Bool) {
        try await pool.write { db in
            if let replacingToken {
                try db.execute(
                    sql: """
                        UPDATE wallet_cards SET token = ?, exp_month = ?, exp_year = ?
                        WHERE wallet_id = ? AND fingerprint = ? AND token = ?
                        """,
                    arguments: [
                        card.token.rawValue, card.expMonth, card.expYear, card.walletID, card.fingerprint,
                        replacingToken,
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
                    card.id, card.walletID, card.token.rawValue, card.bin, card.last4, card.brand.rawValue,
                    card.expMonth, card.expYear, card.fingerprint, card.createdAt.milliseconds, fingerprintScope,
                ])
            let saved: (card: CardOnFile, created: Bool)
            if db.changesCount == 1 {
                saved = (card, true)
            } else {
                let row = try Row.fetchOne(
                    db, sql: "SELECT * FROM wallet_cards WHERE wallet_id = ? AND fingerprint = ?",
                    arguments: [card.walletID, card.fingerprint])
                guard let row else { throw WalletError(.internalFailure, "a saved card vanished") }
                saved = (try Self.card(row), false)
            }
            try Self.apply(recording(saved.card, saved.created), in: db)
            return saved
        }
    }

    public func savedToken(of walletID: String, fingerprint: String) async throws -> String? {
        try pool.readInPlace { db in
            try String.fetchOne(
                db, sql: "SELECT token FROM wallet_cards WHERE wallet_id = ? AND fingerprint = ?",
                arguments: [walletID, fingerprint])
        }
    }

    public func cards(of walletID: String) async throws -> [CardOnFile] {
        try pool.readInPlace { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM wallet_cards WHERE wallet_id = ? ORDER BY created_at_ms, id",
                arguments: [walletID]
            ).map(Self.card)
        }
    }

    public func cards(fingerprintScopeBelow scope: Int64) async throws -> [(id: String, token: Token, tenant: String)] {
        try pool.readInPlace { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT wallet_cards.id, wallet_cards.token, wallets.tenant FROM wallet_cards
                    JOIN wallets ON wallets.id = wallet_cards.wallet_id WHERE wallet_cards.fingerprint_scope < ?
                    """, arguments: [scope]
            ).map { (id: $0["id"], token: Token(unchecked: $0["token"]), tenant: $0["tenant"]) }
        }
    }

    public func setFingerprint(of cardID: String, to fingerprint: String?, scope: Int64) async throws {
        try await pool.write { db in
            let update = "UPDATE OR IGNORE wallet_cards SET fingerprint = ?, fingerprint_scope = ? WHERE id = ?"
            try db.execute(sql: update, arguments: [fingerprint ?? "gone:\(cardID)", scope, cardID])
            if db.changesCount == 0 {
                try db.execute(sql: update, arguments: ["duplicate:\(cardID)", scope, cardID])
            }
        }
    }

    static func card(_ row: Row) throws -> CardOnFile {
        CardOnFile(
            id: row["id"], walletID: row["wallet_id"], token: Token(unchecked: row["token"]), bin: row["bin"],
            last4: row["last4"], brand: CardBrand(rawValue: row["brand"]) ?? .unknown, expMonth: row["exp_month"],
            expYear: row["exp_year"], fingerprint: row["fingerprint"],
            createdAt: Date(milliseconds: row["created_at_ms"]))
    }

    // MARK: Money and its records

    public func commit(
        _ transfers: [TransferRequest], recording: @escaping @Sendable ([TransferResult]) throws -> [WalletWrite]
    ) async throws -> [TransferResult] {
        try await sqliteLedger.createTransfers(transfers) { db, results in
            try Self.apply(recording(results), in: db)
        }
    }

    public func unresolvedTopUps(
        createdBefore cutoff: Date, limit: Int
    ) async throws -> [(attempt: TopUpAttempt, key: IdempotencyKey)] {
        try pool.readInPlace { db in
            try Row.fetchAll(
                db.cachedStatement(
                    sql: "SELECT * FROM wallet_top_ups WHERE status = 'authorizing' AND created_at_ms < ? "
                        + "ORDER BY created_at_ms LIMIT ?"),
                arguments: [cutoff.milliseconds, limit]
            ).map { row in
                (
                    TopUpAttempt(
                        id: row["id"], walletID: row["wallet_id"], cardID: row["card_id"], amount: row["amount"],
                        currency: row["currency"], createdAt: Date(milliseconds: row["created_at_ms"])),
                    try IdempotencyKey(owner: row["owner"], key: row["idempotency_key"])
                )
            }
        }
    }

    public func write(_ writes: [WalletWrite]) async throws {
        try await pool.write { db in try Self.apply(writes, in: db) }
    }

    public func topUpContext(key: IdempotencyKey, walletID: String, cardID: String) async throws -> TopUpContext {
        try pool.readInPlace { db in
            TopUpContext(
                outcome: try Self.outcome(of: key, in: db),
                attempt: try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM wallet_top_ups WHERE owner = ? AND idempotency_key = ?"),
                    arguments: [key.owner, key.key]
                ).map {
                    TopUpAttempt(
                        id: $0["id"], walletID: $0["wallet_id"], cardID: $0["card_id"], amount: $0["amount"],
                        currency: $0["currency"], createdAt: Date(milliseconds: $0["created_at_ms"]))
                },
                wallet: try Self.walletEntry(walletID, in: db),
                card: try Row.fetchOne(
                    db.cachedStatement(sql: "SELECT * FROM wallet_cards WHERE id = ? AND wallet_id = ?"),
                    arguments: [cardID, walletID]
                ).map(Self.card))
        }
    }

    /// Writes `writes` in the caller's transaction (also for the stores that share `wallet.db`).
    package static func apply(_ writes: [WalletWrite], in db: Database) throws {
        for write in writes {
            switch write {
            case .outcome(let outcome, let key):
                do {
                    try db.cachedStatement(
                        sql: """
                            INSERT INTO wallet_idempotency (owner, key, request, outcome, created_at_ms)
                            VALUES (?, ?, ?, ?, ?)
                            """
                    ).execute(arguments: [
                        key.owner, key.key, outcome.request, outcome.outcome, outcome.createdAt.milliseconds,
                    ])
                } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
                    throw OutcomeAlreadyStored()
                }
            case .topUpAttempt(let attempt, let key):
                try db.execute(
                    sql: """
                        INSERT INTO wallet_top_ups (id, owner, idempotency_key, wallet_id, card_id, amount, currency,
                            status, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 'authorizing', ?)
                        """,
                    arguments: [
                        attempt.id, key.owner, key.key, attempt.walletID, attempt.cardID, attempt.amount,
                        attempt.currency, attempt.createdAt.milliseconds,
                    ])
            case .topUpFailed(let id):
                try db.execute(sql: "UPDATE wallet_top_ups SET status = 'failed' WHERE id = ?", arguments: [id])
            case .topUpDecided(let topUp):
                try db.execute(
                    sql: """
                        UPDATE wallet_top_ups SET status = ?, auth_code = ?, acquirer_reference = ?, decline_code = ?
                        WHERE id = ? AND status = 'authorizing'
                        """,
                    arguments: [
                        topUp.status.rawValue, topUp.authCode, topUp.acquirerReference, topUp.declineCode, topUp.id,
                    ])
            }
        }
    }

    // MARK: Idempotency outcomes

    public func outcome(of key: IdempotencyKey) async throws -> StoredIdempotencyOutcome? {
        try pool.readInPlace { db in try Self.outcome(of: key, in: db) }
    }

    private static func outcome(of key: IdempotencyKey, in db: Database) throws -> StoredIdempotencyOutcome? {
        try Row.fetchOne(
            db.cachedStatement(
                sql: "SELECT request, outcome, created_at_ms FROM wallet_idempotency WHERE owner = ? AND key = ?"),
            arguments: [key.owner, key.key]
        ).map {
            StoredIdempotencyOutcome(
                request: $0["request"], outcome: $0["outcome"], createdAt: Date(milliseconds: $0["created_at_ms"]))
        }
    }

    /// Rows are in insertion order (rowid), which is time order to within a commit's latency, so
    /// each pass reads from the oldest row and stops at the first newer than `cutoff`: the cost is
    /// the rows deleted, not the table. A row a little out of order goes in a later purge.
    public func purgeOutcomes(before cutoff: Date, batchSize: Int) async throws -> Int {
        precondition(batchSize > 0)
        var total = 0
        while true {
            let pass = try await pool.write { db -> (deleted: Int, more: Bool) in
                let oldest = try Row.fetchAll(
                    db, sql: "SELECT rowid, created_at_ms FROM wallet_idempotency ORDER BY rowid LIMIT ?",
                    arguments: [batchSize])
                let expired = oldest.prefix { ($0[1] as Int64) < cutoff.milliseconds }
                guard let last = expired.last else { return (0, false) }
                try db.execute(sql: "DELETE FROM wallet_idempotency WHERE rowid <= ?", arguments: [last[0] as Int64])
                // More may follow only if the whole batch was expired.
                return (db.changesCount, expired.count == batchSize)
            }
            total += pass.deleted
            if !pass.more { return total }
        }
    }

    // MARK: Schema

    static var migrator: DatabaseMigrator {
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
        migrator.registerMigration("wallet.idempotency.v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE wallet_idempotency (
                        owner TEXT NOT NULL,
                        key TEXT NOT NULL,
                        request TEXT NOT NULL,
                        outcome BLOB NOT NULL,
                        created_at_ms INTEGER NOT NULL,
                        PRIMARY KEY (owner, key)
                    ) WITHOUT ROWID
                    """)
        }
        // Outcomes are a few hundred bytes: as a rowid table they append, and only the small
        // (owner, key) index takes the clients' keys in random order (a WITHOUT ROWID table
        // split its large rows across far more pages per commit).
        migrator.registerMigration("wallet.idempotency.v2") { db in
            try db.execute(
                sql: """
                    CREATE TABLE wallet_idempotency_v2 (
                        owner TEXT NOT NULL,
                        key TEXT NOT NULL,
                        request TEXT NOT NULL,
                        outcome BLOB NOT NULL,
                        created_at_ms INTEGER NOT NULL
                    );
                    INSERT INTO wallet_idempotency_v2 (owner, key, request, outcome, created_at_ms)
                        SELECT owner, key, request, outcome, created_at_ms FROM wallet_idempotency ORDER BY created_at_ms;
                    DROP TABLE wallet_idempotency;
                    ALTER TABLE wallet_idempotency_v2 RENAME TO wallet_idempotency;
                    CREATE UNIQUE INDEX wallet_idempotency_key ON wallet_idempotency(owner, key);
                    """)
        }
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
        // The maintenance pass looks for top-ups whose outcome is unknown, oldest first.
        migrator.registerMigration("wallet.top-ups-authorizing") { db in
            try db.execute(
                sql:
                    "CREATE INDEX wallet_top_ups_authorizing ON wallet_top_ups(created_at_ms) WHERE status = 'authorizing'"
            )
        }
        return migrator
    }
}
