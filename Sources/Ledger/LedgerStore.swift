/// A double-entry ledger: accounts, transfers, two-phase holds, linked transfers, idempotent
/// ids. TigerBeetle's model. One implementation per backend (``SQLiteLedger`` today); every
/// method is durable when it returns.
///
/// Invariants every implementation keeps, under any interleaving of callers:
/// 1. Per currency, the sum over all accounts of credits minus debits is zero, posted and
///    pending separately (each transfer adds the same amount to one debit and one credit).
/// 2. An account flagged `debitsMustNotExceedCredits` never has posted plus pending debits
///    above its posted credits (no overdraft), and likewise for `creditsMustNotExceedDebits`.
/// 3. A pending transfer is released exactly once: posted, voided or expired.
///
/// Choices (TigerBeetle's model unless stated):
/// - A post or void may leave its debit and credit account ids empty; if it names them, they
///   must be the pending transfer's (`pending_transfer_has_different_debit_account`, `…_credit_…`).
/// - A pending transfer must expire in the future when it is created (`invalid_expiry`); one
///   without an expiry never expires.
/// - Failed transfers are not stored, so the id of a failed transfer may be used again, and a
///   retry after, say, `insufficient_funds` can succeed once funds arrive. TigerBeetle instead
///   remembers transient failures (`id_already_failed`); here a caller that needs a retry to
///   replay its failure records it itself, in the same commit (the wallet's store does).
public protocol LedgerStore: Sendable {
    /// Creates an account; creating it again with the same currency and flags returns it.
    /// - Throws: `account_exists` for the same id with other fields, `invalid_id`.
    func createAccount(id: String, currency: Currency, flags: AccountFlags) async throws -> Account
    /// The account `id`, or `nil`.
    func account(_ id: String) async throws -> Account?
    /// Creates transfers durably (the call returns after the commit); a result per request, in
    /// order. Linked chains commit all or nothing; an unlinked failure fails alone.
    func createTransfers(_ requests: [TransferRequest]) async throws -> [TransferResult]
    /// Releases every pending transfer whose time is up; returns how many.
    @discardableResult
    func expirePending() async throws -> Int
    /// The transfer `id`, or `nil`.
    func transfer(_ id: String) async throws -> Transfer?
    /// Transfers that moved `accountID`, oldest first, after sequence `after` (pagination).
    func transfers(
        of accountID: String, after: Int64, limit: Int
    ) async throws -> [(sequence: Int64, transfer: Transfer)]
    /// Recomputes invariants 1 and 2 over every account from the stored balances alone,
    /// independently of the per-commit checks (start-up, tests, audits).
    /// - Throws: `invariant_violated`.
    func verifyInvariants() async throws
}
