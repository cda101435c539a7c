public import Foundation
public import GRDB
import GroupCommit

/// A double-entry ledger in `wallet.db` (never in `vault.db`): accounts, transfers, two-phase
/// holds, linked transfers, idempotent ids. TigerBeetle's model on SQLite.
///
/// Invariants, checked inside every commit before it is made (a violation rolls the whole
/// commit back and is reported as `invariant_violated`):
/// 1. Per currency, the sum over all accounts of credits minus debits is zero, posted and
///    pending separately (each transfer adds the same amount to one debit and one credit).
/// 2. An account flagged `debitsMustNotExceedCredits` never has posted plus pending debits
///    above its posted credits (no overdraft), and likewise for `creditsMustNotExceedDebits`.
/// 3. A pending transfer is released exactly once: posted, voided or expired.
/// All writes go through one SQLite writer, so these hold under any interleaving of callers;
/// concurrent callers share commits (group commit).
public final class Ledger: Sendable {
    public static let fileName = "wallet.db"
    public let pool: DatabasePool
    private let committer: GroupCommitter<Submission, Result<[TransferResult], any Error>>
    private let clock: @Sendable () -> Date

    /// Opens (and creates) `wallet.db` in `directory`.
    public init(directory: String, clock: @escaping @Sendable () -> Date = { Date() }) throws {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let path = (directory as NSString).appendingPathComponent(Self.fileName)
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -65536")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        // GRDB sets synchronous = NORMAL for WAL; an acknowledged transfer must be on disk.
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try Self.migrator.migrate(pool)
        self.pool = pool
        self.clock = clock
        self.committer = GroupCommitter { [clock] submissions in
            try await pool.write { db in try Self.apply(submissions, in: db, now: clock()) }
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("ledger.v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE ledger_accounts (
                        id TEXT PRIMARY KEY,
                        currency TEXT NOT NULL,
                        flags INTEGER NOT NULL,
                        debits_posted INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
                        credits_posted INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
                        debits_pending INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
                        credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
                        created_at_ms INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX ledger_accounts_currency ON ledger_accounts(currency);
                    CREATE TABLE ledger_transfers (
                        seq INTEGER PRIMARY KEY,
                        id TEXT NOT NULL UNIQUE,
                        debit_account TEXT NOT NULL REFERENCES ledger_accounts(id),
                        credit_account TEXT NOT NULL REFERENCES ledger_accounts(id),
                        amount INTEGER NOT NULL CHECK (amount >= 0),
                        currency TEXT NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('single', 'pending', 'post', 'void', 'expire')),
                        pending_id TEXT,
                        expires_at_ms INTEGER,
                        state TEXT CHECK (state IN ('pending', 'posted', 'voided', 'expired')),
                        created_at_ms INTEGER NOT NULL
                    );
                    CREATE INDEX ledger_transfers_debit ON ledger_transfers(debit_account, seq);
                    CREATE INDEX ledger_transfers_credit ON ledger_transfers(credit_account, seq);
                    CREATE INDEX ledger_transfers_open ON ledger_transfers(expires_at_ms) WHERE state = 'pending';
                    """)
        }
        return migrator
    }

    // MARK: Accounts

    /// Creates an account; creating it again with the same currency and flags returns it.
    /// - Throws: `account_exists` for the same id with other fields, `invalid_id`.
    public func createAccount(id: String, currency: Currency, flags: AccountFlags = []) async throws -> Account {
        let now = clock()
        return try await pool.write { db in
            try self.createAccount(id: id, currency: currency, flags: flags, in: db, now: now)
        }
    }

    /// Creates an account inside the caller's write transaction on ``pool`` (so that, e.g., a
    /// wallet and its account commit together); the same rules as ``createAccount(id:currency:flags:)``.
    public func createAccount(
        id: String, currency: Currency, flags: AccountFlags, in db: Database, now: Date
    ) throws -> Account {
        try Self.validate(id: id)
        if let existing = try Self.account(db, id) {
            guard existing.currency == currency, existing.flags == flags else {
                throw LedgerError(.accountExists, "account \(id) exists with another currency or flags")
            }
            return existing
        }
        try db.execute(
            sql: "INSERT INTO ledger_accounts (id, currency, flags, created_at_ms) VALUES (?, ?, ?, ?)",
            arguments: [id, currency.code, flags.rawValue, now.milliseconds])
        return Account(id: id, currency: currency, flags: flags, createdAt: Date(milliseconds: now.milliseconds))
    }

    /// The account `id`, or `nil`.
    public func account(_ id: String) async throws -> Account? {
        try await pool.read { db in try Self.account(db, id) }
    }

    /// The account `id` as `db` sees it, or `nil` (for reads inside a caller's transaction).
    public static func account(_ db: Database, _ id: String) throws -> Account? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM ledger_accounts WHERE id = ?"), arguments: [id]).map {
            row in
            Account(
                id: row["id"], currency: try Currency(row["currency"]), flags: AccountFlags(rawValue: row["flags"]),
                balances: Balances(
                    debitsPosted: row["debits_posted"], creditsPosted: row["credits_posted"],
                    debitsPending: row["debits_pending"], creditsPending: row["credits_pending"]),
                createdAt: Date(milliseconds: row["created_at_ms"]))
        }
    }

    // MARK: Transfers

    /// Creates transfers durably (the call returns after the commit); a result per request, in
    /// order. Linked chains commit all or nothing; an unlinked failure fails alone.
    public func createTransfers(_ requests: [TransferRequest]) async throws -> [TransferResult] {
        guard !requests.isEmpty else { return [] }
        return try await committer.submit([Submission(requests: requests, record: nil)])[0].get()
    }

    /// Creates transfers like ``createTransfers(_:)`` and, in the same transaction, calls
    /// `record` with their results, so that what it writes (e.g. the stored response of an
    /// idempotent request) commits together with the transfers or not at all. If `record`
    /// throws, none of these transfers is made and the error is rethrown; other callers sharing
    /// the commit are not affected.
    public func createTransfers(
        _ requests: [TransferRequest], recording record: @escaping @Sendable (Database, [TransferResult]) throws -> Void
    ) async throws -> [TransferResult] {
        guard !requests.isEmpty else { return [] }
        return try await committer.submit([Submission(requests: requests, record: record)])[0].get()
    }

    /// One caller's transfers in a shared commit.
    struct Submission: Sendable {
        var requests: [TransferRequest]
        var record: (@Sendable (Database, [TransferResult]) throws -> Void)?
    }

    /// Releases every pending transfer whose time is up; returns how many.
    @discardableResult
    public func expirePending() async throws -> Int {
        let now = clock()
        return try await pool.write { db in
            let due = try Row.fetchAll(
                db,
                sql: "SELECT id FROM ledger_transfers WHERE state = 'pending' AND expires_at_ms <= ?",
                arguments: [now.milliseconds]
            ).map { $0["id"] as String }
            for id in due { try Self.release(db, pendingID: id, to: .expired) }
            try Self.checkInvariants(db, currencies: nil)
            return due.count
        }
    }

    /// The transfer `id`, or `nil`.
    public func transfer(_ id: String) async throws -> Transfer? {
        try await pool.read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM ledger_transfers WHERE id = ?"), arguments: [id])
                .map(Self.transfer)
        }
    }

    /// Transfers that moved `accountID`, oldest first, after sequence `after` (pagination).
    public func transfers(
        of accountID: String, after: Int64 = 0, limit: Int = 100
    ) async throws
        -> [(sequence: Int64, transfer: Transfer)]
    {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM ledger_transfers WHERE (debit_account = ? OR credit_account = ?) AND seq > ?
                    ORDER BY seq LIMIT ?
                    """,
                arguments: [accountID, accountID, after, limit]
            ).map { (($0["seq"] as Int64), try Self.transfer($0)) }
        }
    }

    static func transfer(_ row: Row) throws -> Transfer {
        let expires: Int64? = row["expires_at_ms"]
        let state: String? = row["state"]
        return Transfer(
            id: row["id"], debitAccountID: row["debit_account"], creditAccountID: row["credit_account"],
            amount: row["amount"], currency: try Currency(row["currency"]), kind: row["kind"],
            pendingID: row["pending_id"], expiresAt: expires.map(Date.init(milliseconds:)),
            state: state.flatMap(PendingState.init(rawValue:)), createdAt: Date(milliseconds: row["created_at_ms"]))
    }

    /// Checks invariant 1 over every currency (tests, audits).
    public func verifyInvariants() async throws {
        try await pool.read { db in try Self.checkInvariants(db, currencies: nil) }
    }

    // MARK: Applying a commit

    private static func apply(
        _ submissions: [Submission], in db: Database, now: Date
    ) throws -> [Result<[TransferResult], any Error>] {
        var touched = Set<String>()
        let outcomes = try submissions.map { submission -> Result<[TransferResult], any Error> in
            guard let record = submission.record else {
                return .success(try applyRequests(submission.requests, in: db, now: now, touched: &touched))
            }
            var outcome: Result<[TransferResult], any Error> = .success([])
            try db.inSavepoint {
                do {
                    let results = try applyRequests(submission.requests, in: db, now: now, touched: &touched)
                    try record(db, results)
                    outcome = .success(results)
                    return .commit
                } catch {
                    outcome = .failure(error)
                    return .rollback
                }
            }
            return outcome
        }
        try checkInvariants(db, currencies: touched)
        return outcomes
    }

    private static func applyRequests(
        _ requests: [TransferRequest], in db: Database, now: Date, touched: inout Set<String>
    ) throws -> [TransferResult] {
        var results = [TransferResult]()
        var chainStart = 0
        while chainStart < requests.count {
            var chainEnd = chainStart
            while chainEnd < requests.count - 1 && requests[chainEnd].linked { chainEnd += 1 }
            let chain = Array(requests[chainStart...chainEnd])
            results += try applyChain(chain, openEnded: chain.last!.linked, in: db, now: now, touched: &touched)
            chainStart = chainEnd + 1
        }
        return results
    }

    /// Applies a linked chain in a savepoint: all of it, or none of it.
    private static func applyChain(
        _ chain: [TransferRequest], openEnded: Bool, in db: Database, now: Date, touched: inout Set<String>
    ) throws -> [TransferResult] {
        var results = [TransferResult]()
        var touchedHere = Set<String>()
        // A lone single or pending transfer writes nothing until all its checks pass, so it needs
        // no savepoint; chains and post/void (which release before checking) do.
        if chain.count == 1, !openEnded,
            chain[0].kind == .single || { if case .pending = chain[0].kind { true } else { false } }()
        {
            do {
                let result = try applyOne(chain[0], in: db, now: now, touched: &touchedHere)
                touched.formUnion(touchedHere)
                return [result]
            } catch let error as LedgerError {
                return [.failed(error)]
            }
        }
        try db.inSavepoint {
            for (index, request) in chain.enumerated() {
                do {
                    if openEnded && index == chain.count - 1 {
                        throw LedgerError(.linkedTransferFailed, "the last transfer of a call may not be linked")
                    }
                    results.append(try applyOne(request, in: db, now: now, touched: &touchedHere))
                } catch let error as LedgerError {
                    // The whole chain fails: the culprit with its error, the others as linked.
                    results = chain.indices.map { other in
                        other == index
                            ? .failed(error)
                            : .failed(
                                LedgerError(.linkedTransferFailed, "a linked transfer failed: \(chain[index].id)"))
                    }
                    return .rollback
                }
            }
            touched.formUnion(touchedHere)
            return .commit
        }
        return results
    }

    private static func applyOne(
        _ request: TransferRequest, in db: Database, now: Date, touched: inout Set<String>
    ) throws -> TransferResult {
        try validate(id: request.id)
        if let existing = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT * FROM ledger_transfers WHERE id = ?"), arguments: [request.id])
        {
            guard try sameFields(request, as: existing) else {
                throw LedgerError(.transferExists, "transfer \(request.id) exists with other fields")
            }
            return .exists
        }
        switch request.kind {
        case .single, .pending:
            guard request.amount > 0 else { throw LedgerError(.invalidAmount, "amount must be positive") }
            guard request.debitAccountID != request.creditAccountID else {
                throw LedgerError(.sameAccount, "debit and credit accounts must differ")
            }
            guard var debit = try account(db, request.debitAccountID) else {
                throw LedgerError(.accountNotFound, "no account \(request.debitAccountID)")
            }
            guard var credit = try account(db, request.creditAccountID) else {
                throw LedgerError(.accountNotFound, "no account \(request.creditAccountID)")
            }
            guard debit.currency == credit.currency else {
                throw LedgerError(.currencyMismatch, "accounts have different currencies")
            }
            var expiresAt: Date?
            if case .pending(let expiry) = request.kind {
                expiresAt = expiry
                debit.balances.debitsPending = try add(debit.balances.debitsPending, request.amount)
                credit.balances.creditsPending = try add(credit.balances.creditsPending, request.amount)
            } else {
                debit.balances.debitsPosted = try add(debit.balances.debitsPosted, request.amount)
                credit.balances.creditsPosted = try add(credit.balances.creditsPosted, request.amount)
            }
            try checkFlags(debit, credit)
            try save(db, debit)
            try save(db, credit)
            try insert(
                db, request, debit: debit.id, credit: credit.id, amount: request.amount, currency: debit.currency,
                kind: expiresAt == nil && request.kind == .single ? "single" : "pending", pendingID: nil,
                expiresAt: expiresAt, state: request.kind == .single ? nil : .pending, now: now)
            touched.insert(debit.currency.code)
        case .post(let pendingID), .void(let pendingID):
            let pending = try openPending(db, pendingID, now: now)
            let isPost: Bool
            if case .post = request.kind { isPost = true } else { isPost = false }
            if isPost {
                guard request.amount > 0 else { throw LedgerError(.invalidAmount, "amount must be positive") }
                guard request.amount <= pending.amount else {
                    throw LedgerError(.postExceedsPending, "post amount exceeds the pending amount")
                }
            }
            try release(db, pendingID: pendingID, to: isPost ? .posted : .voided)
            if isPost {
                guard var debit = try account(db, pending.debitAccountID),
                    var credit = try account(db, pending.creditAccountID)
                else { throw LedgerError(.accountNotFound, "an account of the pending transfer is gone") }
                debit.balances.debitsPosted = try add(debit.balances.debitsPosted, request.amount)
                credit.balances.creditsPosted = try add(credit.balances.creditsPosted, request.amount)
                try checkFlags(debit, credit)
                try save(db, debit)
                try save(db, credit)
            }
            try insert(
                db, request, debit: pending.debitAccountID, credit: pending.creditAccountID,
                amount: isPost ? request.amount : 0, currency: pending.currency, kind: isPost ? "post" : "void",
                pendingID: pendingID, expiresAt: nil, state: nil, now: now)
            touched.insert(pending.currency.code)
        }
        return .created
    }

    /// The pending transfer `id`, still open.
    private static func openPending(_ db: Database, _ id: String, now: Date) throws -> Transfer {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT * FROM ledger_transfers WHERE id = ?"), arguments: [id])
        else {
            throw LedgerError(.pendingNotFound, "no pending transfer \(id)")
        }
        let pending = try transfer(row)
        switch pending.state {
        case .pending?:
            if let expiresAt = pending.expiresAt, expiresAt <= now {
                throw LedgerError(.pendingExpired, "pending transfer \(id) has expired")
            }
            return pending
        case .posted?: throw LedgerError(.pendingAlreadyPosted, "pending transfer \(id) was already posted")
        case .voided?: throw LedgerError(.pendingAlreadyVoided, "pending transfer \(id) was already voided")
        case .expired?: throw LedgerError(.pendingExpired, "pending transfer \(id) has expired")
        case nil: throw LedgerError(.pendingNotFound, "transfer \(id) is not a pending transfer")
        }
    }

    /// Releases a pending hold exactly once: the state moves from `pending` in the same UPDATE
    /// that checks it, and the hold leaves both accounts.
    private static func release(_ db: Database, pendingID: String, to state: PendingState) throws {
        try db.cachedStatement(sql: "UPDATE ledger_transfers SET state = ? WHERE id = ? AND state = 'pending'")
            .execute(arguments: [state.rawValue, pendingID])
        guard db.changesCount == 1 else {
            throw LedgerError(.invariantViolated, "pending transfer \(pendingID) was released twice")
        }
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT * FROM ledger_transfers WHERE id = ?"), arguments: [pendingID])
        else { throw LedgerError(.pendingNotFound, "no pending transfer \(pendingID)") }
        let pending = try transfer(row)
        try db.cachedStatement(sql: "UPDATE ledger_accounts SET debits_pending = debits_pending - ? WHERE id = ?")
            .execute(arguments: [pending.amount, pending.debitAccountID])
        try db.cachedStatement(sql: "UPDATE ledger_accounts SET credits_pending = credits_pending - ? WHERE id = ?")
            .execute(arguments: [pending.amount, pending.creditAccountID])
    }

    private static func sameFields(_ request: TransferRequest, as row: Row) throws -> Bool {
        let kind: String = row["kind"]
        let pendingID: String? = row["pending_id"]
        switch request.kind {
        case .single, .pending:
            let expires: Int64? = row["expires_at_ms"]
            let requestExpiry: Int64? = if case .pending(let date) = request.kind { date?.milliseconds } else { nil }
            return kind == (request.kind == .single ? "single" : "pending")
                && row["debit_account"] == request.debitAccountID
                && row["credit_account"] == request.creditAccountID && row["amount"] == request.amount
                && expires == requestExpiry
        case .post(let id):
            return kind == "post" && pendingID == id && row["amount"] == request.amount
        case .void(let id):
            return kind == "void" && pendingID == id
        }
    }

    private static func insert(
        _ db: Database, _ request: TransferRequest, debit: String, credit: String, amount: Int64, currency: Currency,
        kind: String, pendingID: String?, expiresAt: Date?, state: PendingState?, now: Date
    ) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO ledger_transfers (id, debit_account, credit_account, amount, currency, kind, pending_id,
                    expires_at_ms, state, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """
        ).execute(
            arguments: [
                request.id, debit, credit, amount, currency.code, kind, pendingID, expiresAt?.milliseconds,
                state?.rawValue, now.milliseconds,
            ])
    }

    private static func save(_ db: Database, _ account: Account) throws {
        try db.cachedStatement(
            sql: """
                UPDATE ledger_accounts SET debits_posted = ?, credits_posted = ?, debits_pending = ?, credits_pending = ?
                WHERE id = ?
                """
        ).execute(
            arguments: [
                account.balances.debitsPosted, account.balances.creditsPosted, account.balances.debitsPending,
                account.balances.creditsPending, account.id,
            ])
    }

    private static func checkFlags(_ debit: Account, _ credit: Account) throws {
        for account in [debit, credit] {
            let balances = account.balances
            // Posted plus pending must fit too (TigerBeetle's `overflows_debits`/`overflows_credits`),
            // else `Balances.available` cannot be represented.
            _ = try add(balances.debitsPosted, balances.debitsPending)
            _ = try add(balances.creditsPosted, balances.creditsPending)
            if account.flags.contains(.debitsMustNotExceedCredits),
                try add(balances.debitsPosted, balances.debitsPending) > balances.creditsPosted
            {
                throw LedgerError(.insufficientFunds, "account \(account.id) has insufficient funds")
            }
            if account.flags.contains(.creditsMustNotExceedDebits),
                try add(balances.creditsPosted, balances.creditsPending) > balances.debitsPosted
            {
                throw LedgerError(.exceedsDebits, "credits to account \(account.id) would exceed its debits")
            }
        }
    }

    private static func add(_ left: Int64, _ right: Int64) throws -> Int64 {
        let (sum, overflow) = left.addingReportingOverflow(right)
        guard !overflow else { throw LedgerError(.overflow, "the amount overflows an account balance") }
        return sum
    }

    /// Invariant 1 (zero sum per currency) over `currencies`, or over all currencies plus
    /// invariant 2 over all accounts. Per commit, invariant 2 is checked on the accounts a
    /// transfer touches (`checkFlags`); the full scan is for ``verifyInvariants()``.
    static func checkInvariants(_ db: Database, currencies: Set<String>?) throws {
        let codes =
            try currencies.map(Array.init)
            ?? String.fetchAll(db, sql: "SELECT DISTINCT currency FROM ledger_accounts")
        for code in codes {
            // The totals of a currency may exceed Int64 (SQLite's sum() then fails with "integer
            // overflow"), so each balance is summed as its high and low 32 bits, which cannot.
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT coalesce(sum(credits_posted >> 32), 0) - coalesce(sum(debits_posted >> 32), 0) AS posted_high,
                        coalesce(sum(credits_posted & 4294967295), 0) - coalesce(sum(debits_posted & 4294967295), 0)
                            AS posted_low,
                        coalesce(sum(credits_pending >> 32), 0) - coalesce(sum(debits_pending >> 32), 0) AS pending_high,
                        coalesce(sum(credits_pending & 4294967295), 0) - coalesce(sum(debits_pending & 4294967295), 0)
                            AS pending_low
                    FROM ledger_accounts WHERE currency = ?
                    """,
                arguments: [code])
            func total(_ row: Row, _ name: String) -> Int128 {
                Int128(row["\(name)_high"] as Int64) << 32 + Int128(row["\(name)_low"] as Int64)
            }
            guard let row, total(row, "posted") == 0, total(row, "pending") == 0 else {
                throw LedgerError(.invariantViolated, "balances in \(code) do not sum to zero")
            }
        }
        guard currencies == nil else { return }
        let overdrawn =
            try Int.fetchOne(
                db,
                sql: """
                    SELECT count(*) FROM ledger_accounts
                    WHERE (flags & 1 != 0 AND debits_posted + debits_pending > credits_posted)
                       OR (flags & 2 != 0 AND credits_posted + credits_pending > debits_posted)
                    """) ?? 0
        guard overdrawn == 0 else {
            throw LedgerError(.invariantViolated, "\(overdrawn) account(s) break their balance flags")
        }
    }

    static func validate(id: String) throws {
        guard (1...128).contains(id.utf8.count), id.utf8.allSatisfy({ (33...126).contains($0) }) else {
            throw LedgerError(.invalidID, "ids must be 1 to 128 printable ASCII characters")
        }
    }
}

extension Date {
    var milliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }

    init(milliseconds: Int64) {
        self.init(timeIntervalSince1970: Double(milliseconds) / 1000)
    }
}
