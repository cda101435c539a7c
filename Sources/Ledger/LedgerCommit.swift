import GRDB
import SQLiteSupport

/// One write transaction of the ledger: the transfers of every caller sharing a commit (or
/// one sweep of expired holds), applied against the accounts held in memory.
///
/// How a commit works:
/// - An account is read from `ledger_accounts` the first time a transfer of the commit
///   touches it and then kept in memory; every later transfer of the commit checks its
///   balance flags against, and adds to, the in-memory balances, which are exactly what the
///   database would hold had each transfer been written at once (nothing else writes account
///   balances in the transaction).
/// - Transfer rows are written as they are accepted (one `INSERT … ON CONFLICT(id) DO
///   NOTHING`, whose conflict is the idempotency check), and holds are released in
///   `ledger_transfers` at once, so savepoints roll them back with the rest. Their postings
///   (the statement index) are collected and written by ``flush()``, sorted by account and seq:
///   consecutive inserts then land in the same pages of `ledger_postings`, about a third of the
///   cost of inserting them in arrival order, scattered over every account's range.
/// - Touched accounts are written once, by ``flush()``: at the end of the commit, and before a
///   caller's `record` runs (so that it reads current balances). Each write is a compare-and-set
///   on the four balances last read or written, so the database changes by exactly the
///   in-memory deltas.
/// - Savepoints (linked chains, recorded submissions) keep an undo log of the in-memory state,
///   so a rollback restores the accounts together with the database.
///
/// Invariant 1 (zero sum per currency) is checked on each flush from the deltas it writes:
/// per currency, Σ(credits − debits) over the written accounts, new minus stored, posted and
/// pending separately, must be 0. The sum over all accounts was 0 before the flush (the
/// previous commit ended so; an earlier flush of this transaction checked the same), and the
/// compare-and-set guarantees that the database moved by exactly these deltas, so the sum over
/// all accounts is still 0 after it. A flush happens only between transfers, each of which
/// adds the same amount to one debit and one credit of one currency, so a correct ledger always
/// passes; a bug that books one side only (or in the wrong currency) fails the commit. The
/// check costs O(accounts written), not O(accounts in the currency). It rests on induction
/// from an empty (or migrated, SQL-checked) ledger: a balance changed behind the ledger's back
/// is caught by the compare-and-set only when a later commit touches that account, which is why
/// `Ledger.verifyInvariants()` (and `fullCheckEvery`) recompute the sums in SQL from scratch.
final class LedgerCommit {
    let db: Database
    let nowMs: Int64

    private var slots: [String: Int] = [:]
    private var accounts: [CachedAccount] = []
    /// Slots that may be dirty (a slot appears once per time it became dirty).
    private var dirtySlots: [Int] = []
    private var undo: [Undo] = []
    /// Postings of the transfers inserted since the last flush, not yet written.
    private var postings: [Posting] = []

    struct Posting: Comparable {
        var account: Int64
        var seq: Int64

        static func < (left: Posting, right: Posting) -> Bool {
            (left.account, left.seq) < (right.account, right.seq)
        }
    }

    private let selectAccount: RawStatement
    private let updateAccount: RawStatement
    private let insertTransfer: RawStatement
    private let insertPosting: RawStatement
    private let selectTransfer: RawStatement
    private let releasePending: RawStatement

    struct CachedAccount {
        var id: String
        /// The account's number in `ledger_postings`.
        var num: Int64
        var currency: String
        var flags: AccountFlags
        var balances: Balances
        /// The balances in the database (as last read or written in this transaction).
        var stored: Balances
        var dirty: Bool
    }

    private enum Undo {
        /// The account in this slot was read into memory (undone by forgetting it).
        case loaded(slot: Int)
        /// The account in this slot was as given before a change.
        case changed(slot: Int, balances: Balances, stored: Balances, dirty: Bool)
        /// A flush wrote (and dropped) these postings.
        case flushedPostings([Posting])
    }

    init(_ db: Database, now: Int64) throws {
        self.db = db
        nowMs = now
        selectAccount = try RawStatement(
            db,
            """
            SELECT currency, flags, debits_posted, credits_posted, debits_pending, credits_pending, num
            FROM ledger_accounts WHERE id = ?
            """)
        updateAccount = try RawStatement(
            db,
            """
            UPDATE ledger_accounts SET debits_posted = ?1, credits_posted = ?2, debits_pending = ?3, credits_pending = ?4
            WHERE id = ?5 AND debits_posted = ?6 AND credits_posted = ?7 AND debits_pending = ?8 AND credits_pending = ?9
            """)
        insertTransfer = try RawStatement(
            db,
            """
            INSERT INTO ledger_transfers (id, debit_account, credit_account, amount, currency, kind, pending_id,
                expires_at_ms, state, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(id) DO NOTHING
            """)
        insertPosting = try RawStatement(db, "INSERT INTO ledger_postings (account, seq) VALUES (?, ?)")
        selectTransfer = try RawStatement(
            db,
            """
            SELECT kind, debit_account, credit_account, amount, currency, pending_id, expires_at_ms, state
            FROM ledger_transfers WHERE id = ?
            """)
        releasePending = try RawStatement(
            db, "UPDATE ledger_transfers SET state = ? WHERE id = ? AND state = 'pending'")
    }

    // MARK: Accounts in memory

    /// The slot of account `id`, read from the database on first use; `nil` if there is none.
    /// Misses are not remembered (a caller's `record` may create the account later on).
    func slot(_ id: String) throws -> Int? {
        if let slot = slots[id] { return slot }
        try selectAccount.bind(1, id)
        defer { selectAccount.reset() }
        guard try selectAccount.next() else { return nil }
        let balances = Balances(
            debitsPosted: selectAccount.int64(2), creditsPosted: selectAccount.int64(3),
            debitsPending: selectAccount.int64(4), creditsPending: selectAccount.int64(5))
        let slot = accounts.count
        accounts.append(
            CachedAccount(
                id: id, num: selectAccount.int64(6), currency: selectAccount.string(0),
                flags: AccountFlags(rawValue: Int(selectAccount.int64(1))), balances: balances, stored: balances,
                dirty: false))
        slots[id] = slot
        undo.append(.loaded(slot: slot))
        return slot
    }

    func account(_ slot: Int) -> CachedAccount { accounts[slot] }

    /// Sets the in-memory balances of the account in `slot` (written by the next flush).
    func setBalances(_ slot: Int, _ balances: Balances) {
        let account = accounts[slot]
        undo.append(.changed(slot: slot, balances: account.balances, stored: account.stored, dirty: account.dirty))
        accounts[slot].balances = balances
        if !account.dirty {
            accounts[slot].dirty = true
            dirtySlots.append(slot)
        }
    }

    /// Writes every account changed since the last flush, once each, and checks that the
    /// written deltas sum to zero per currency (see the type's documentation); then the postings
    /// collected since, in (account, seq) order.
    func flush() throws {
        try flushAccounts()
        guard !postings.isEmpty else { return }
        undo.append(.flushedPostings(postings))
        for posting in postings.sorted() {
            try insertPosting.bind(1, posting.account)
            try insertPosting.bind(2, posting.seq)
            guard try insertPosting.run() == 1 else {
                throw LedgerError(.invariantViolated, "posting \(posting.seq) of account \(posting.account) exists")
            }
        }
        postings.removeAll(keepingCapacity: true)
    }

    private func flushAccounts() throws {
        guard !dirtySlots.isEmpty else { return }
        var sums: [(currency: String, posted: Int128, pending: Int128)] = []
        for slot in dirtySlots where slot < accounts.count && accounts[slot].dirty {
            let account = accounts[slot]
            let new = account.balances
            let old = account.stored
            try updateAccount.bind(1, new.debitsPosted)
            try updateAccount.bind(2, new.creditsPosted)
            try updateAccount.bind(3, new.debitsPending)
            try updateAccount.bind(4, new.creditsPending)
            try updateAccount.bind(5, account.id)
            try updateAccount.bind(6, old.debitsPosted)
            try updateAccount.bind(7, old.creditsPosted)
            try updateAccount.bind(8, old.debitsPending)
            try updateAccount.bind(9, old.creditsPending)
            guard try updateAccount.run() == 1 else {
                throw LedgerError(.invariantViolated, "account \(account.id) changed outside the ledger's commit")
            }
            let posted =
                (Int128(new.creditsPosted) - Int128(old.creditsPosted))
                - (Int128(new.debitsPosted) - Int128(old.debitsPosted))
            let pending =
                (Int128(new.creditsPending) - Int128(old.creditsPending))
                - (Int128(new.debitsPending) - Int128(old.debitsPending))
            if let index = sums.firstIndex(where: { $0.currency == account.currency }) {
                sums[index].posted += posted
                sums[index].pending += pending
            } else {
                sums.append((account.currency, posted, pending))
            }
            undo.append(.changed(slot: slot, balances: new, stored: old, dirty: true))
            accounts[slot].stored = new
            accounts[slot].dirty = false
        }
        dirtySlots.removeAll(keepingCapacity: true)
        for sum in sums where sum.posted != 0 || sum.pending != 0 {
            throw LedgerError(.invariantViolated, "balances in \(sum.currency) do not sum to zero")
        }
    }

    // MARK: Savepoints

    /// Runs `body` in a savepoint; when it returns `false` (or throws), the database and the
    /// in-memory accounts go back to where they were.
    func inSavepoint(_ body: () throws -> Bool) throws {
        let mark = (undo: undo.count, postings: postings.count)
        var keep = false
        do {
            try db.inSavepoint {
                keep = try body()
                return keep ? .commit : .rollback
            }
        } catch {
            rollBack(to: mark)
            throw error
        }
        if !keep { rollBack(to: mark) }
    }

    private func rollBack(to mark: (undo: Int, postings: Int)) {
        defer {
            // The postings collected in the savepoint (after any it flushed came back).
            postings.removeSubrange(min(mark.postings, postings.count)...)
        }
        while undo.count > mark.undo {
            switch undo.removeLast() {
            case .loaded(let slot):
                // Undone in reverse order, so the slot is the last one.
                slots[accounts[slot].id] = nil
                accounts.removeLast()
            case .changed(let slot, let balances, let stored, let dirty):
                accounts[slot].balances = balances
                accounts[slot].stored = stored
                if dirty && !accounts[slot].dirty { dirtySlots.append(slot) }
                accounts[slot].dirty = dirty
            case .flushedPostings(let flushed):
                postings = flushed
            }
        }
    }

    // MARK: Transfers

    /// A stored transfer's fields, as the commit compares and releases them.
    struct StoredTransfer {
        var kind: String
        var debitAccountID: String
        var creditAccountID: String
        var amount: Int64
        var currency: String
        var pendingID: String?
        var expiresAtMs: Int64?
        var state: String?
    }

    func storedTransfer(_ id: String) throws -> StoredTransfer? {
        try selectTransfer.bind(1, id)
        defer { selectTransfer.reset() }
        guard try selectTransfer.next() else { return nil }
        return StoredTransfer(
            kind: selectTransfer.string(0), debitAccountID: selectTransfer.string(1),
            creditAccountID: selectTransfer.string(2), amount: selectTransfer.int64(3),
            currency: selectTransfer.string(4), pendingID: selectTransfer.optionalString(5),
            expiresAtMs: selectTransfer.optionalInt64(6), state: selectTransfer.optionalString(7))
    }

    /// Inserts a transfer row and collects its two postings; `false` if a transfer with this id
    /// exists (nothing written).
    func insert(
        id: String, debit: (id: String, num: Int64), credit: (id: String, num: Int64), amount: Int64,
        currency: String, kind: String, pendingID: String?, expiresAtMs: Int64?, state: String?
    ) throws -> Bool {
        try insertTransfer.bind(1, id)
        try insertTransfer.bind(2, debit.id)
        try insertTransfer.bind(3, credit.id)
        try insertTransfer.bind(4, amount)
        try insertTransfer.bind(5, currency)
        try insertTransfer.bind(6, kind)
        try insertTransfer.bind(7, pendingID)
        try insertTransfer.bind(8, expiresAtMs)
        try insertTransfer.bind(9, state)
        try insertTransfer.bind(10, nowMs)
        guard try insertTransfer.run() == 1 else { return false }
        let seq = insertTransfer.lastInsertRowID
        postings.append(Posting(account: debit.num, seq: seq))
        postings.append(Posting(account: credit.num, seq: seq))
        return true
    }

    /// Moves the pending transfer `id` out of `pending`, in the same statement that checks that
    /// it is pending: a hold is released exactly once.
    func release(_ id: String, to state: PendingState) throws {
        try releasePending.bind(1, state.rawValue)
        try releasePending.bind(2, id)
        guard try releasePending.run() == 1 else {
            throw LedgerError(.invariantViolated, "pending transfer \(id) was released twice")
        }
    }
}
