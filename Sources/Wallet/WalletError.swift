public import CardTokens

/// Why the wallet refused a request. Codes are stable (the HTTP layer maps each to a status);
/// messages are fixed text: they never echo an id, amount or key the client sent, since a client
/// may put a card number in any of them by mistake.
public struct WalletError: Error, Sendable, Hashable, Codable {
    public struct Code: DomainErrorCode, Codable {
        public let rawValue: String
        /// What kind of failure it is, declared with the code (a code cannot exist without one).
        public let category: ErrorCategory
        private init(_ rawValue: String, _ category: ErrorCategory) {
            self.rawValue = rawValue
            self.category = category
        }

        /// Every code, for decoding a stored outcome (an idempotent replay).
        static let all: [Code] = [
            .invalidOwnerRef, .unsupportedCurrency, .invalidAmount, .invalidIBAN, .invalidAccountNumbering,
            .invalidCursor, .invalidIdempotencyKey, .walletNotFound, .cardNotFound, .tokenNotFound, .cardExpired,
            .currencyMismatch, .sameWallet, .insufficientFunds, .amountOverflow, .accountNumbersExhausted,
            .idempotencyKeyReused, .idempotencyKeyInUse, .acquirerTimeout, .acquirerUnavailable, .acquirerNotConfigured,
            .internalFailure, .invalidSpendLimits, .invalidMCC, .invalidCountry, .invalidExpiresInMonths,
            .virtualCardNotFound, .cardClosed, .invalidStateTransition, .issuingNotConfigured, .invalidNetworkMessage,
            .networkReferenceReused, .authorizationNotFound, .amountExceedsAuthorization, .authorizationReleased,
            .topUpNotCompleted,
        ]

        public init(from decoder: any Decoder) throws {
            let rawValue = try decoder.singleValueContainer().decode(String.self)
            guard let known = Self.all.first(where: { $0.rawValue == rawValue }) else {
                throw DecodingError.dataCorrupted(
                    .init(codingPath: decoder.codingPath, debugDescription: "unknown wallet error code"))
            }
            self = known
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            try container.encode(rawValue)
        }

        // Input
        public static let invalidOwnerRef = Self("invalid_owner_ref", .invalidInput)
        public static let unsupportedCurrency = Self("unsupported_currency", .refused)
        public static let invalidAmount = Self("invalid_amount", .refused)
        public static let invalidIBAN = Self("invalid_iban", .invalidInput)
        public static let invalidAccountNumbering = Self("invalid_account_numbering", .unavailable)
        public static let invalidCursor = Self("invalid_cursor", .invalidInput)
        public static let invalidIdempotencyKey = Self("invalid_idempotency_key", .invalidInput)
        // What the request names
        public static let walletNotFound = Self("wallet_not_found", .notFound)
        public static let cardNotFound = Self("card_not_found", .notFound)
        public static let tokenNotFound = Self("token_not_found", .refused)
        public static let cardExpired = Self("card_expired", .refused)
        public static let currencyMismatch = Self("currency_mismatch", .refused)
        public static let sameWallet = Self("same_wallet", .refused)
        // Money
        public static let insufficientFunds = Self("insufficient_funds", .refused)
        public static let amountOverflow = Self("amount_overflow", .refused)
        public static let accountNumbersExhausted = Self("account_numbers_exhausted", .unavailable)
        // Idempotency
        public static let idempotencyKeyReused = Self("idempotency_key_reused", .refused)
        public static let idempotencyKeyInUse = Self("idempotency_key_in_use", .conflict)
        // The acquirer (retry with the same Idempotency-Key)
        public static let acquirerTimeout = Self("acquirer_timeout", .upstreamTimeout)
        public static let acquirerUnavailable = Self("acquirer_unavailable", .upstreamFailed)
        public static let acquirerNotConfigured = Self("acquirer_not_configured", .unavailable)
        /// A top-up whose answer was lost was settled by the maintenance pass without a charge:
        /// the acquirer never received it, or gave no answer within the time allowed. Final for
        /// its Idempotency-Key: a new top-up needs a new key.
        public static let topUpNotCompleted = Self("top_up_not_completed", .upstreamFailed)
        // Virtual cards
        public static let invalidSpendLimits = Self("invalid_spend_limits", .invalidInput)
        public static let invalidMCC = Self("invalid_mcc", .invalidInput)
        public static let invalidCountry = Self("invalid_country", .invalidInput)
        public static let invalidExpiresInMonths = Self("invalid_expires_in_months", .invalidInput)
        public static let virtualCardNotFound = Self("virtual_card_not_found", .notFound)
        /// A closed card cannot change any more.
        public static let cardClosed = Self("card_closed", .conflict)
        /// The card's state cannot go to the one asked for (e.g. `paused` before `active`).
        public static let invalidStateTransition = Self("invalid_state_transition", .conflict)
        public static let issuingNotConfigured = Self("issuing_not_configured", .unavailable)
        /// A card-network message with a malformed field.
        public static let invalidNetworkMessage = Self("invalid_network_message", .invalidInput)
        /// A network reference that came before with other fields.
        public static let networkReferenceReused = Self("network_reference_reused", .conflict)
        /// A clearing or reversal of an authorization that was never approved here.
        public static let authorizationNotFound = Self("authorization_not_found", .notFound)
        /// A clearing or reversal of more than the authorization still holds.
        public static let amountExceedsAuthorization = Self("amount_exceeds_authorization", .refused)
        /// A clearing or reversal of an authorization whose hold is already fully released.
        public static let authorizationReleased = Self("authorization_released", .conflict)
        /// A fault of the service (e.g. the ledger refused a commit for an invariant).
        public static let internalFailure = Self("internal_failure", .internal)

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
}

extension WalletError: DomainError {
    public var retryAfterSeconds: Int? { isRetryable ? 1 : nil }
}
