public import Foundation
package import GRDB
import GroupCommit
import SQLiteSupport
import Synchronization

/// The ``LedgerStore`` on SQLite, in `wallet.db` (never in `vault.db`).
///
/// How it keeps the protocol's invariants: every commit checks them before it is made (a
/// violation rolls the whole commit back and is reported as `invariant_violated` to every caller
/// in it). Invariant 1 is checked from the deltas each commit writes (see `LedgerCommit`: the
/// deltas of a commit summing to zero per currency, given the sum was zero before, proves it is
/// zero after), in O(accounts touched); ``verifyInvariants()`` recomputes it in SQL over every
/// account, and so does every `fullCheckEvery`-th commit if that is set. Invariant 2 is checked
/// for both accounts of every transfer, against balances that include every earlier transfer of
/// the commit. All writes go through one SQLite writer, so the invariants hold under any
/// interleaving of callers; concurrent callers share commits (group commit), and a commit writes
/// each account it touches once, however many of its transfers touch it.
public final class SQLiteLedger: LedgerStore {
    public static let fileName = "wallet.db"
    /// For the stores that share `wallet.db` and its commits (the wallet's) and for tests; not
    /// public API: nothing outside the package may reach the ledger's tables behind its back.
    package let pool: DatabasePool
    private let committer: GroupCommitter<Submission, Result<[TransferResult], any Error>>
    private let clock: @Sendable () -> Date
    private let fullCheck: FullCheck

    /// Opens (and creates) `wallet.db` in `directory`.
    /// - Parameter fullCheckEvery: if positive, every n-th commit of transfers (and every
    ///   expiry sweep) also recomputes invariants 1 and 2 in SQL over all accounts before it
    ///   commits, as ``verifyInvariants()`` does: O(accounts), for tests and audits. Each commit
    ///   checks them anyway from what it changes.
    public init(directory: String, clock: @escaping @Sendable () -> Date = { Date() }, fullCheckEvery: Int = 0) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA cache_size = -65536")
        }
        // Owner-only (folder 0700; the file, its -wal and -shm 0600) before SQLite opens it, and
        // `synchronous = FULL` on the writer: an acknowledged transfer must be on disk.
        // A commit of a few thousand transfers dirties a page per account it touches (its
        // balances and the end of its postings), and the next commit dirties most of the same
        // pages again. Checkpointing every 32 MiB of WAL instead of SQLite's 4 MiB copies each
        // such page into the database once per several commits instead of once per commit.
        let pool = try DatabaseFile.openDurablePool(
            directory: directory, fileName: Self.fileName, configuration: configuration,
            writerPragmas: "PRAGMA wal_autocheckpoint = 8192; PRAGMA journal_size_limit = 67108864")
        try LedgerSchema.migrator.migrate(pool)
        self.pool = pool
        self.clock = clock
        let fullCheck = FullCheck(every: fullCheckEvery)
        self.fullCheck = fullCheck
        self.committer = GroupCommitter { [clock] submissions in
            try await pool.write { db in
                try Self.apply(submissions, in: db, now: clock(), fullCheck: fullCheck.due())
            }
        }
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
    package func createAccount(
        id: String, currency: Currency, flags: AccountFlags, in db: Database, now: Date
    ) throws -> Account {
        try Self.validate(id: id)
        if let existing = try Self.account(db, id) {
            guard existing.currency == currency, existing.flags == flags else {
                throw LedgerError(.accountExists, "account \(id) exists with another currency or flags")
            }
            return existing
        }
        // `num` numbers accounts in creation order, for the postings (see `LedgerSchema`).
        try db.execute(
            sql: """
                INSERT INTO ledger_accounts (id, num, currency, flags, created_at_ms)
                VALUES (?, (SELECT coalesce(max(num), 0) + 1 FROM ledger_accounts), ?, ?, ?)
                """,
            arguments: [id, currency.code, flags.rawValue, now.milliseconds])
        return Account(id: id, currency: currency, flags: flags, createdAt: Date(milliseconds: now.milliseconds))
    }

    /// The account `id`, or `nil`.
    public func account(_ id: String) async throws -> Account? {
        try pool.readInPlace { db in try Self.account(db, id) }
    }

    /// The account `id` as `db` sees it, or `nil` (for reads inside a caller's transaction).
    package static func account(_ db: Database, _ id: String) throws -> Account? {
        let select = try RawStatement(
            db,
            """
            SELECT currency, flags, debits_posted, credits_posted, debits_pending, credits_pending, created_at_ms
            FROM ledger_accounts WHERE id = ?1
            """)
        try select.bind(1, id)
        defer { select.reset() }
        guard try select.next() else { return nil }
        return Account(
            id: id, currency: try Currency(select.string(0)), flags: AccountFlags(rawValue: Int(select.int64(1))),
            balances: Balances(
                debitsPosted: select.int64(2), creditsPosted: select.int64(3), debitsPending: select.int64(4),
                creditsPending: select.int64(5)),
            createdAt: Date(milliseconds: select.int64(6)))
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
    /// the commit are not affected. `record` sees the balances these transfers leave (e.g.
    /// through ``account(_:_:)``); it must not write `ledger_accounts` balances itself.
    package func createTransfers(
        _ requests: [TransferRequest], recording record: @escaping @Sendable (Database, [TransferResult]) throws -> Void
    ) async throws -> [TransferResult] {
        guard !requests.isEmpty else { return [] }
        return try await committer.submit([Submission(requests: requests, record: record)])[0].get()
    }

    /// Creates transfers inside the caller's write transaction on ``pool``, for a store whose own
    /// rows decide what to transfer (a card authorization reads the card, decides, holds and
    /// records in one transaction). The same rules and per-commit invariant checks as
    /// ``createTransfers(_:)``, without group commit: the caller's transaction is the commit.
    package func createTransfers(_ requests: [TransferRequest], in db: Database) throws -> [TransferResult] {
        guard !requests.isEmpty else { return [] }
        return try Self.apply(
            [Submission(requests: requests, record: nil)], in: db, now: clock(), fullCheck: fullCheck.due())[0].get()
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
        let fullCheck = fullCheck.isOn
        return try await pool.write { db in
            let commit = try LedgerCommit(db, now: now.milliseconds)
            let count = try commit.expireDue()
            try commit.flush()
            if fullCheck { try Self.checkInvariants(db) }
            return count
        }
    }

    /// The transfer `id`, or `nil`.
    public func transfer(_ id: String) async throws -> Transfer? {
        try pool.readInPlace { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM ledger_transfers WHERE id = ?"), arguments: [id])
                .map(Self.transfer)
        }
    }

    /// Transfers that moved `accountID`, oldest first, after sequence `after` (pagination).
    ///
    /// One range scan of `ledger_postings` (keyed by account number and seq) from `after`, which
    /// stops after `limit` rows, each joined to its transfer by seq: a page costs
    /// O(limit · log n) however many transfers the account has.
    public func transfers(
        of accountID: String, after: Int64 = 0, limit: Int = 100
    ) async throws
        -> [(sequence: Int64, transfer: Transfer)]
    {
        try pool.readInPlace { db in
            try Row.fetchAll(
                db.cachedStatement(sql: Self.statementSQL), arguments: [accountID, after, limit]
            ).map { (($0["seq"] as Int64), try Self.transfer($0)) }
        }
    }

    static let statementSQL = """
        SELECT t.* FROM ledger_postings p JOIN ledger_transfers t ON t.seq = p.seq
        WHERE p.account = (SELECT num FROM ledger_accounts WHERE id = ?1) AND p.seq > ?2
        ORDER BY p.seq LIMIT ?3
        """

    static func transfer(_ row: Row) throws -> Transfer {
        let expires: Int64? = row["expires_at_ms"]
        let state: String? = row["state"]
        return Transfer(
            id: row["id"], debitAccountID: row["debit_account"], creditAccountID: row["credit_account"],
            amount: row["amount"], currency: try Currency(row["currency"]), kind: row["kind"],
            pendingID: row["pending_id"], expiresAt: expires.map(Date.init(milliseconds:)),
            state: state.flatMap(PendingState.init(rawValue:)), createdAt: Date(milliseconds: row["created_at_ms"]))
    }

    /// Checks invariants 1 and 2 over every account in SQL, from the stored balances alone
    /// (tests, audits): independent of the per-commit checks. Also checks that the statement
    /// index is complete: every transfer has exactly its two postings. O(accounts + transfers).
    public func verifyInvariants() async throws {
        try pool.readInPlace { db in
            try Self.checkInvariants(db)
            try Self.checkPostings(db)
        }
    }

    /// Every transfer has a posting for its debit account and one for its credit account, and
    /// there are no others.
    static func checkPostings(_ db: Database) throws {
        let missing =
            try Int.fetchOne(
                db,
                sql: """
                    SELECT count(*) FROM ledger_transfers t
                    JOIN ledger_accounts d ON d.id = t.debit_account
                    JOIN ledger_accounts c ON c.id = t.credit_account
                    WHERE NOT EXISTS (SELECT 1 FROM ledger_postings p WHERE p.account = d.num AND p.seq = t.seq)
                       OR NOT EXISTS (SELECT 1 FROM ledger_postings p WHERE p.account = c.num AND p.seq = t.seq)
                    """) ?? 0
        let transfers = try Int.fetchOne(db, sql: "SELECT count(*) FROM ledger_transfers") ?? 0
        let postings = try Int.fetchOne(db, sql: "SELECT count(*) FROM ledger_postings") ?? 0
        guard missing == 0, postings == 2 * transfers else {
            throw LedgerError(
                .invariantViolated, "\(missing) transfer(s) lack postings; \(postings) postings for \(transfers)")
        }
    }

    // MARK: Applying a commit

    static func apply(
        _ submissions: [Submission], in db: Database, now: Date, fullCheck: Bool
    ) throws -> [Result<[TransferResult], any Error>] {
        let commit = try LedgerCommit(db, now: now.milliseconds)
        let outcomes = try submissions.map { submission -> Result<[TransferResult], any Error> in
            guard let record = submission.record else {
                return .success(try commit.apply(submission.requests))
            }
            var outcome: Result<[TransferResult], any Error> = .success([])
            try commit.inSavepoint {
                do {
                    let results = try commit.apply(submission.requests)
                    // The caller's record reads what these transfers did.
                    try commit.flush()
                    try record(db, results)
                    outcome = .success(results)
                    return true
                } catch let error as LedgerError where error.code == .invariantViolated {
                    throw error
                } catch {
                    outcome = .failure(error)
                    return false
                }
            }
            return outcome
        }
        try commit.flush()
        if fullCheck { try checkInvariants(db) }
        return outcomes
    }

    /// Invariant 1 (zero sum per currency) and invariant 2 (balance flags) over all accounts,
    /// in SQL: one scan of `ledger_accounts`.
    static func checkInvariants(_ db: Database) throws {
        // The totals of a currency may exceed Int64 (SQLite's sum() then fails with "integer
        // overflow"), so each balance is summed as its high and low 32 bits, which cannot.
        let rows = try Row.fetchAll(
            db,
            sql: """
                SELECT currency,
                    coalesce(sum(credits_posted >> 32), 0) - coalesce(sum(debits_posted >> 32), 0) AS posted_high,
                    coalesce(sum(credits_posted & 4294967295), 0) - coalesce(sum(debits_posted & 4294967295), 0)
                        AS posted_low,
                    coalesce(sum(credits_pending >> 32), 0) - coalesce(sum(debits_pending >> 32), 0) AS pending_high,
                    coalesce(sum(credits_pending & 4294967295), 0) - coalesce(sum(debits_pending & 4294967295), 0)
                        AS pending_low
                FROM ledger_accounts GROUP BY currency
                """)
        func total(_ row: Row, _ name: String) -> Int128 {
            Int128(row["\(name)_high"] as Int64) << 32 + Int128(row["\(name)_low"] as Int64)
        }
        for row in rows where total(row, "posted") != 0 || total(row, "pending") != 0 {
            let code: String = row["currency"]
            throw LedgerError(.invariantViolated, "balances in \(code) do not sum to zero")
        }
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

/// Which commits also run the full SQL check of the invariants.
private final class FullCheck: Sendable {
    let every: Int
    private let commits = Atomic<Int>(0)

    init(every: Int) { self.every = every }

    var isOn: Bool { every > 0 }

    /// Whether the next commit runs it.
    func due() -> Bool {
        guard every > 0 else { return false }
        return commits.add(1, ordering: .relaxed).newValue % every == 0
    }
}
