/// A failure of a cryptographic operation.
///
/// The error never carries key material or plaintext: only a stable ``Code`` that callers
/// match on and a fixed description.
public struct VaultCryptoError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable, opaque error code (the PSQLError pattern: new codes do not break callers).
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case authenticationFailed = "authentication_failed"
            case truncatedInput = "truncated_input"
            case invalidKeySize = "invalid_key_size"
            case invalidParameter = "invalid_parameter"
            case unsupportedFormat = "unsupported_format"
        }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The ciphertext was modified, is bound to something else, or the key is wrong.
        public static let authenticationFailed = Self(.authenticationFailed)
        /// The input is shorter than the smallest valid encoding.
        public static let truncatedInput = Self(.truncatedInput)
        /// A key has the wrong length.
        public static let invalidKeySize = Self(.invalidKeySize)
        /// A length or parameter is outside what the primitive accepts.
        public static let invalidParameter = Self(.invalidParameter)
        /// An envelope names a format or version this code does not know.
        public static let unsupportedFormat = Self(.unsupportedFormat)

        public var description: String { base.rawValue }

        /// Lets `catch VaultCryptoError.Code.authenticationFailed` match.
        public static func ~= (code: Code, error: any Error) -> Bool {
            (error as? VaultCryptoError)?.code == code
        }
    }

    public let code: Code

    public init(_ code: Code) { self.code = code }

    public static var authenticationFailed: Self { .init(.authenticationFailed) }
    public static var truncatedInput: Self { .init(.truncatedInput) }
    public static var invalidKeySize: Self { .init(.invalidKeySize) }
    public static var invalidParameter: Self { .init(.invalidParameter) }
    public static var unsupportedFormat: Self { .init(.unsupportedFormat) }

    public var description: String { "VaultCryptoError(\(code))" }
}
