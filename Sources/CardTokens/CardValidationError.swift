/// Why card input or a token string was refused.
///
/// The message describes the rule that failed and never contains the input itself, so it is
/// safe to return to a client or to log.
public struct CardValidationError: Error, Sendable, Hashable {
    /// A stable error code, returned to API clients as `error.code`.
    public struct Code: DomainErrorCode {
        public let rawValue: String
        /// Every card-validation failure is invalid input.
        public var category: ErrorCategory { .invalidInput }
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// The PAN contains characters other than digits, spaces and dashes.
        public static let panNotNumeric = Self("invalid_pan")
        /// The PAN has fewer than 12 or more than 19 digits.
        public static let panLength = Self("invalid_pan_length")
        /// The PAN fails the Luhn check.
        public static let panLuhn = Self("invalid_pan_luhn")
        /// `exp_month` is not 1–12.
        public static let expiryMonth = Self("invalid_exp_month")
        /// `exp_year` is not a four-digit year in range.
        public static let expiryYear = Self("invalid_exp_year")
        /// The expiry date is in the past.
        public static let expired = Self("card_expired")
        /// The CVV is not 3 digits (4 for American Express).
        public static let cvv = Self("invalid_cvv")
        /// The token format name is unknown.
        public static let tokenFormat = Self("invalid_token_format")
        /// The string is not a well-formed token.
        public static let token = Self("invalid_token")

        public static func ~= (code: Code, error: any Error) -> Bool {
            (error as? CardValidationError)?.code == code
        }
    }

    public let code: Code
    /// A description of the rule that failed; never echoes the input.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

extension CardValidationError: DomainError {}
