/// Why the wallet refused a request. Codes are stable (the HTTP layer maps each to a status);
/// messages are fixed text: they never echo an id, amount or key the client sent, since a client
/// may put a card number in any of them by mistake.
public struct WalletError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        init(_ rawValue: String) { self.rawValue = rawValue }

        // Input
        public static let invalidOwnerRef = Self("invalid_owner_ref")
        public static let unsupportedCurrency = Self("unsupported_currency")
        public static let invalidAmount = Self("invalid_amount")
        public static let invalidIBAN = Self("invalid_iban")
        public static let invalidAccountNumbering = Self("invalid_account_numbering")
        public static let invalidCursor = Self("invalid_cursor")
        public static let invalidIdempotencyKey = Self("invalid_idempotency_key")
        // What the request names
        public static let walletNotFound = Self("wallet_not_found")
        public static let cardNotFound = Self("card_not_found")
        public static let tokenNotFound = Self("token_not_found")
        public static let cardExpired = Self("card_expired")
        public static let currencyMismatch = Self("currency_mismatch")
        public static let sameWallet = Self("same_wallet")
        // Money
        public static let insufficientFunds = Self("insufficient_funds")
        public static let amountOverflow = Self("amount_overflow")
        public static let accountNumbersExhausted = Self("account_numbers_exhausted")
        // Idempotency
        public static let idempotencyKeyReused = Self("idempotency_key_reused")
        public static let idempotencyKeyInUse = Self("idempotency_key_in_use")
        // The acquirer (retry with the same Idempotency-Key)
        public static let acquirerTimeout = Self("acquirer_timeout")
        public static let acquirerUnavailable = Self("acquirer_unavailable")
        public static let acquirerNotConfigured = Self("acquirer_not_configured")
        /// A fault of the service (e.g. the ledger refused a commit for an invariant).
        public static let internalFailure = Self("internal_failure")

        public var description: String { rawValue }

        public static func ~= (code: Code, error: any Error) -> Bool {
            (error as? WalletError)?.code == code
        }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The one message for an unknown wallet, whichever id (path, `from_wallet`, `to_wallet`) named it.
    public static let walletNotFound = WalletError(.walletNotFound, "no wallet with this id")

    /// Whether retrying the same request with the same Idempotency-Key may succeed.
    public var isRetryable: Bool { [.acquirerTimeout, .acquirerUnavailable, .idempotencyKeyInUse].contains(code) }

    public var description: String { "WalletError(\(code): \(message))" }
}
