/// Why the ledger refused an operation. Codes are stable; messages never hold more than ids.
public struct LedgerError: Error, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        public static let unknownCurrency = Self("unknown_currency")
        public static let invalidAmount = Self("invalid_amount")
        public static let invalidID = Self("invalid_id")
        public static let accountNotFound = Self("account_not_found")
        public static let accountExists = Self("account_exists")
        public static let sameAccount = Self("same_account")
        public static let currencyMismatch = Self("currency_mismatch")
        public static let overflow = Self("overflow")
        public static let insufficientFunds = Self("insufficient_funds")
        public static let exceedsDebits = Self("exceeds_debits")
        public static let transferExists = Self("transfer_exists_with_different_fields")
        public static let pendingNotFound = Self("pending_transfer_not_found")
        public static let pendingAlreadyPosted = Self("pending_transfer_already_posted")
        public static let pendingAlreadyVoided = Self("pending_transfer_already_voided")
        public static let pendingExpired = Self("pending_transfer_expired")
        public static let postExceedsPending = Self("post_amount_exceeds_pending")
        /// A post or void named a debit account other than its pending transfer's.
        public static let pendingDifferentDebitAccount = Self("pending_transfer_has_different_debit_account")
        /// A post or void named a credit account other than its pending transfer's.
        public static let pendingDifferentCreditAccount = Self("pending_transfer_has_different_credit_account")
        /// A pending transfer whose expiry is not in the future.
        public static let invalidExpiry = Self("invalid_expiry")
        public static let linkedTransferFailed = Self("linked_transfer_failed")
        public static let invariantViolated = Self("invariant_violated")

        public var description: String { rawValue }

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

    /// The type and code only: a description lands in logs and interpolations, so it carries no
    /// message (which may name paths, ids or versions); ``debugDescription`` has the details.
    public var description: String { "LedgerError(\(code))" }
    public var debugDescription: String { "LedgerError(\(code): \(message))" }
}
