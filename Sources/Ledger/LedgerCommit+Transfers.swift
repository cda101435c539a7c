import GRDB
import SQLiteSupport

extension LedgerCommit {
    /// Applies one caller's requests: a result per request, in order. Linked chains commit all
    /// or nothing; an unlinked failure fails alone.
    func apply(_ requests: [TransferRequest]) throws -> [TransferResult] {
        var results = [TransferResult]()
        results.reserveCapacity(requests.count)
        var chainStart = 0
        while chainStart < requests.count {
            var chainEnd = chainStart
            while chainEnd < requests.count - 1 && requests[chainEnd].linked { chainEnd += 1 }
            if chainStart == chainEnd && !requests[chainStart].linked {
                // A lone transfer writes nothing until all its checks pass: no savepoint.
                results.append(try applyAlone(requests[chainStart]))
            } else {
                results += try applyChain(requests[chainStart...chainEnd])
            }
            chainStart = chainEnd + 1
        }
        return results
    }

    private func applyAlone(_ request: TransferRequest) throws -> TransferResult {
        do {
            return try create(request)
        } catch let error as LedgerError where error.code != .invariantViolated {
            return .failed(error)
        }
    }

    /// Applies a linked chain in a savepoint: all of it, or none of it. The last transfer of a
    /// call may not be linked (an open chain fails whole).
    private func applyChain(_ chain: ArraySlice<TransferRequest>) throws -> [TransferResult] {
        var results = [TransferResult]()
        try inSavepoint {
            for index in chain.indices {
                do {
                    if index == chain.endIndex - 1 && chain[index].linked {
                        throw LedgerError(.linkedTransferFailed, "the last transfer of a call may not be linked")
                    }
                    results.append(try create(chain[index]))
                } catch let error as LedgerError where error.code != .invariantViolated {
                    // The whole chain fails: the culprit with its error, the others as linked.
                    results = chain.indices.map { other in
                        other == index
                            ? .failed(error)
                            : .failed(
                                LedgerError(.linkedTransferFailed, "a linked transfer failed: \(chain[index].id)"))
                    }
                    return false
                }
            }
            return true
        }
        return results
    }

    /// What an accepted transfer changes, decided before anything is written.
    private struct Plan {
        var debitSlot: Int
        var creditSlot: Int
        var debit: Balances
        var credit: Balances
        var debitID: String
        var creditID: String
        var amount: Int64
        var currency: String
        var kind: String
        var pendingID: String?
        var expiresAtMs: Int64?
        var state: String?
        /// For post and void: the hold to release and how.
        var release: PendingState?
    }

    /// Creates one transfer, or finds it already made (idempotent id), or throws why not.
    ///
    /// The checks run first, against the in-memory accounts and without writing; then one
    /// `INSERT … ON CONFLICT(id) DO NOTHING` both writes the transfer and tells whether its id
    /// exists. An existing id answers `exists` (same fields) or `transfer_exists_…` (other
    /// fields) whatever the checks would say now, so a failed check looks the id up before
    /// reporting its own error: the results are those of "look up the id, then check".
    private func create(_ request: TransferRequest) throws -> TransferResult {
        try SQLiteLedger.validate(id: request.id)
        let plan: Plan
        do {
            plan = try self.plan(request)
        } catch let error as LedgerError where error.code != .invariantViolated {
            if let existing = try storedTransfer(request.id) { return try compare(request, existing) }
            throw error
        }
        guard
            try insert(
                id: request.id, debit: (plan.debitID, account(plan.debitSlot).num),
                credit: (plan.creditID, account(plan.creditSlot).num), amount: plan.amount,
                currency: plan.currency, kind: plan.kind, pendingID: plan.pendingID, expiresAtMs: plan.expiresAtMs,
                state: plan.state)
        else {
            guard let existing = try storedTransfer(request.id) else {
                throw LedgerError(.invariantViolated, "transfer \(request.id) conflicts but cannot be read")
            }
            return try compare(request, existing)
        }
        if let release = plan.release, let pendingID = plan.pendingID {
            try self.release(pendingID, to: release)
        }
        setBalances(plan.debitSlot, plan.debit)
        setBalances(plan.creditSlot, plan.credit)
        return .created
    }

    private func plan(_ request: TransferRequest) throws -> Plan {
        switch request.kind {
        case .single, .pending:
            guard request.amount > 0 else { throw LedgerError(.invalidAmount, "amount must be positive") }
            var expiresAtMs: Int64?
            if case .pending(let expiresAt?) = request.kind {
                expiresAtMs = expiresAt.milliseconds
                guard expiresAt.milliseconds > nowMs else {
                    throw LedgerError(.invalidExpiry, "a pending transfer must expire in the future")
                }
            }
            guard request.debitAccountID != request.creditAccountID else {
                throw LedgerError(.sameAccount, "debit and credit accounts must differ")
            }
            guard let debitSlot = try slot(request.debitAccountID) else {
                throw LedgerError(.accountNotFound, "no account \(request.debitAccountID)")
            }
            guard let creditSlot = try slot(request.creditAccountID) else {
                throw LedgerError(.accountNotFound, "no account \(request.creditAccountID)")
            }
            let debitAccount = account(debitSlot)
            let creditAccount = account(creditSlot)
            guard debitAccount.currency == creditAccount.currency else {
                throw LedgerError(.currencyMismatch, "accounts have different currencies")
            }
            var debit = debitAccount.balances
            var credit = creditAccount.balances
            let isPending = request.kind != .single
            if isPending {
                debit.debitsPending = try add(debit.debitsPending, request.amount)
                credit.creditsPending = try add(credit.creditsPending, request.amount)
            } else {
                debit.debitsPosted = try add(debit.debitsPosted, request.amount)
                credit.creditsPosted = try add(credit.creditsPosted, request.amount)
            }
            try checkFlags(debitAccount, debit)
            try checkFlags(creditAccount, credit)
            return Plan(
                debitSlot: debitSlot, creditSlot: creditSlot, debit: debit, credit: credit,
                debitID: request.debitAccountID, creditID: request.creditAccountID, amount: request.amount,
                currency: debitAccount.currency, kind: isPending ? "pending" : "single", pendingID: nil,
                expiresAtMs: expiresAtMs, state: isPending ? PendingState.pending.rawValue : nil, release: nil)

        case .post(let pendingID), .void(let pendingID):
            let isPost = if case .post = request.kind { true } else { false }
            let pending = try openPending(pendingID, for: request)
            if isPost {
                guard request.amount > 0 else { throw LedgerError(.invalidAmount, "amount must be positive") }
                guard request.amount <= pending.amount else {
                    throw LedgerError(.postExceedsPending, "post amount exceeds the pending amount")
                }
            }
            guard let debitSlot = try slot(pending.debitAccountID), let creditSlot = try slot(pending.creditAccountID)
            else { throw LedgerError(.accountNotFound, "an account of the pending transfer is gone") }
            let debitAccount = account(debitSlot)
            let creditAccount = account(creditSlot)
            var debit = debitAccount.balances
            var credit = creditAccount.balances
            // The hold leaves both accounts; a post books its amount.
            debit.debitsPending = try subtractHold(debit.debitsPending, pending.amount, pendingID)
            credit.creditsPending = try subtractHold(credit.creditsPending, pending.amount, pendingID)
            if isPost {
                debit.debitsPosted = try add(debit.debitsPosted, request.amount)
                credit.creditsPosted = try add(credit.creditsPosted, request.amount)
            }
            try checkFlags(debitAccount, debit)
            try checkFlags(creditAccount, credit)
            return Plan(
                debitSlot: debitSlot, creditSlot: creditSlot, debit: debit, credit: credit,
                debitID: pending.debitAccountID, creditID: pending.creditAccountID, amount: isPost ? request.amount : 0,
                currency: pending.currency, kind: isPost ? "post" : "void", pendingID: pendingID, expiresAtMs: nil,
                state: nil, release: isPost ? .posted : .voided)
        }
    }

    /// The pending transfer `id`, still open, and named consistently by `request`.
    private func openPending(_ id: String, for request: TransferRequest) throws -> StoredTransfer {
        guard let pending = try storedTransfer(id) else {
            throw LedgerError(.pendingNotFound, "no pending transfer \(id)")
        }
        guard pending.kind == "pending" else {
            throw LedgerError(.pendingNotFound, "transfer \(id) is not a pending transfer")
        }
        // Like TigerBeetle: a post or void may leave the accounts out (empty ids), but if it
        // names them they must be the hold's.
        guard request.debitAccountID.isEmpty || request.debitAccountID == pending.debitAccountID else {
            throw LedgerError(
                .pendingDifferentDebitAccount, "pending transfer \(id) has another debit account")
        }
        guard request.creditAccountID.isEmpty || request.creditAccountID == pending.creditAccountID else {
            throw LedgerError(
                .pendingDifferentCreditAccount, "pending transfer \(id) has another credit account")
        }
        switch pending.state.flatMap(PendingState.init(rawValue:)) {
        case .pending?:
            if let expiresAtMs = pending.expiresAtMs, expiresAtMs <= nowMs {
                throw LedgerError(.pendingExpired, "pending transfer \(id) has expired")
            }
            return pending
        case .posted?: throw LedgerError(.pendingAlreadyPosted, "pending transfer \(id) was already posted")
        case .voided?: throw LedgerError(.pendingAlreadyVoided, "pending transfer \(id) was already voided")
        case .expired?: throw LedgerError(.pendingExpired, "pending transfer \(id) has expired")
        case nil: throw LedgerError(.invariantViolated, "pending transfer \(id) has no state")
        }
    }

    /// `.exists` if `existing` is what `request` asks for, else `transfer_exists_…`.
    private func compare(_ request: TransferRequest, _ existing: StoredTransfer) throws -> TransferResult {
        let same: Bool
        switch request.kind {
        case .single, .pending:
            let requestExpiry: Int64? = if case .pending(let date) = request.kind { date?.milliseconds } else { nil }
            same =
                existing.kind == (request.kind == .single ? "single" : "pending")
                && existing.debitAccountID == request.debitAccountID
                && existing.creditAccountID == request.creditAccountID && existing.amount == request.amount
                && existing.expiresAtMs == requestExpiry
        case .post(let id), .void(let id):
            let isPost = if case .post = request.kind { true } else { false }
            same =
                existing.kind == (isPost ? "post" : "void") && existing.pendingID == id
                && (!isPost || existing.amount == request.amount)
                && (request.debitAccountID.isEmpty || request.debitAccountID == existing.debitAccountID)
                && (request.creditAccountID.isEmpty || request.creditAccountID == existing.creditAccountID)
        }
        guard same else { throw LedgerError(.transferExists, "transfer \(request.id) exists with other fields") }
        return .exists
    }

    // MARK: Expiry

    /// Releases every pending transfer whose time is up (at or before now); returns how many.
    func expireDue() throws -> Int {
        let due = try RawStatement(
            db,
            """
            SELECT id, debit_account, credit_account, amount FROM ledger_transfers
            WHERE state = 'pending' AND expires_at_ms <= ?
            """)
        try due.bind(1, nowMs)
        var holds = [(id: String, debit: String, credit: String, amount: Int64)]()
        while try due.next() { holds.append((due.string(0), due.string(1), due.string(2), due.int64(3))) }
        due.reset()
        for hold in holds {
            try release(hold.id, to: .expired)
            guard let debitSlot = try slot(hold.debit), let creditSlot = try slot(hold.credit) else {
                throw LedgerError(.invariantViolated, "an account of pending transfer \(hold.id) is gone")
            }
            var debit = account(debitSlot).balances
            debit.debitsPending = try subtractHold(debit.debitsPending, hold.amount, hold.id)
            setBalances(debitSlot, debit)
            var credit = account(creditSlot).balances
            credit.creditsPending = try subtractHold(credit.creditsPending, hold.amount, hold.id)
            setBalances(creditSlot, credit)
        }
        return holds.count
    }

    // MARK: Arithmetic and flags

    /// Invariant 2 for one account after a change, plus representability: posted plus pending
    /// must fit too (TigerBeetle's `overflows_debits`/`overflows_credits`), else
    /// `Balances.available` cannot be represented.
    private func checkFlags(_ account: CachedAccount, _ balances: Balances) throws {
        let debits = try add(balances.debitsPosted, balances.debitsPending)
        let credits = try add(balances.creditsPosted, balances.creditsPending)
        if account.flags.contains(.debitsMustNotExceedCredits), debits > balances.creditsPosted {
            throw LedgerError(.insufficientFunds, "account \(account.id) has insufficient funds")
        }
        if account.flags.contains(.creditsMustNotExceedDebits), credits > balances.debitsPosted {
            throw LedgerError(.exceedsDebits, "credits to account \(account.id) would exceed its debits")
        }
    }

    private func add(_ left: Int64, _ right: Int64) throws -> Int64 {
        let (sum, overflow) = left.addingReportingOverflow(right)
        guard !overflow else { throw LedgerError(.overflow, "the amount overflows an account balance") }
        return sum
    }

    /// A pending total less a hold it contains; less than the hold would be a broken ledger.
    private func subtractHold(_ total: Int64, _ hold: Int64, _ id: String) throws -> Int64 {
        guard total >= hold else {
            throw LedgerError(.invariantViolated, "the hold of \(id) exceeds its account's pending total")
        }
        return total - hold
    }
}
