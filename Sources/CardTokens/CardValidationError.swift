/// Why card input or a token string was refused.
///
/// The message describes the rule that failed and never contains the input itself, so it is
/// safe to return to a client or to log.
public struct CardValidationError: Error, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// A stable error code, returned to API clients as `error.code`.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
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

        public var description: String { rawValue }

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

    /// The type and code only: a description lands in logs and interpolations, so it carries no
    /// message (which may name paths, ids or versions); ``debugDescription`` has the details.
    public var description: String { "CardValidationError(\(code))" }
    public var debugDescription: String { "CardValidationError(\(code): \(message))" }
}

extension CardValidationError: CategorizedError {
    public var category: ErrorCategory { code.category }
    public var errorCode: String { code.rawValue }
    public var publicMessage: String { message }
}
