public import CardTokens

/// Why the ledger refused an operation. Codes are stable; messages never hold more than ids.
public struct LedgerError: DomainError, Hashable {
    public struct Code: DomainErrorCode {
        public let rawValue: String
        /// What kind of failure it is, declared with the code (a code cannot exist without one).
        public let category: ErrorCategory
        private init(_ rawValue: String, _ category: ErrorCategory) {
            self.rawValue = rawValue
            self.category = category
        }

        public static let unknownCurrency = Self("unknown_currency", .invalidInput)
        public static let invalidAmount = Self("invalid_amount", .invalidInput)
        public static let invalidID = Self("invalid_id", .invalidInput)
        public static let accountNotFound = Self("account_not_found", .notFound)
        public static let accountExists = Self("account_exists", .conflict)
        public static let sameAccount = Self("same_account", .refused)
        public static let currencyMismatch = Self("currency_mismatch", .refused)
        public static let overflow = Self("overflow", .refused)
        public static let insufficientFunds = Self("insufficient_funds", .refused)
        public static let exceedsDebits = Self("exceeds_debits", .refused)
        public static let transferExists = Self("transfer_exists_with_different_fields", .conflict)
        public static let pendingNotFound = Self("pending_transfer_not_found", .notFound)
        public static let pendingAlreadyPosted = Self("pending_transfer_already_posted", .conflict)
        public static let pendingAlreadyVoided = Self("pending_transfer_already_voided", .conflict)
        public static let pendingExpired = Self("pending_transfer_expired", .refused)
        public static let postExceedsPending = Self("post_amount_exceeds_pending", .refused)
        /// A post or void named a debit account other than its pending transfer's.
        public static let pendingDifferentDebitAccount = Self(
            "pending_transfer_has_different_debit_account", .invalidInput)
        /// A post or void named a credit account other than its pending transfer's.
        public static let pendingDifferentCreditAccount = Self(
            "pending_transfer_has_different_credit_account", .invalidInput)
        /// A pending transfer whose expiry is not in the future.
        public static let invalidExpiry = Self("invalid_expiry", .invalidInput)
        public static let linkedTransferFailed = Self("linked_transfer_failed", .refused)
        public static let invariantViolated = Self("invariant_violated", .internal)

        public static func ~= (code: Code, error: any Error) -> Bool {
            (error as? LedgerError)?.code == code
        }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Fixed text: ``message`` may name account or transfer ids, which a client may have chosen.
    public var publicMessage: String { "the ledger refused the operation (\(code))" }
}
