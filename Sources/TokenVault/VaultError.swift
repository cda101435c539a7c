/// A failure of a vault operation. Messages name objects (paths, versions, token ids) but never
/// a PAN, a CVV or key material.
public struct VaultError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable error code (returned to API clients and used in tests).
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        public static let notInitialized = Self("vault_not_initialized")
        public static let alreadyInitialized = Self("vault_already_initialized")
        public static let wrongMasterKey = Self("master_key_wrong")
        public static let tokenNotFound = Self("token_not_found")
        public static let tokenSpaceExhausted = Self("token_space_exhausted")
        public static let recordCorrupt = Self("record_corrupt")
        public static let unknownKeyVersion = Self("key_version_unknown")
        public static let keyVersionActive = Self("key_version_active")
        public static let keyVersionRetired = Self("key_version_retired")
        public static let keyVersionInUse = Self("key_version_in_use")
        public static let sameMasterKey = Self("master_key_unchanged")
        public static let credentialNotFound = Self("credential_not_found")
        public static let invalidArgument = Self("invalid_argument")
        /// A dedupe hit whose stored expiry differs from the request's.
        public static let dedupeExpiryMismatch = Self("dedupe_expiry_mismatch")
        /// Too many distinct PANs sharing one BIN and last four from one principal (``SimilarCardGuard``).
        public static let similarCardsLimit = Self("similar_cards_limit")

        public var description: String { rawValue }

        public static func ~= (code: Code, error: any Error) -> Bool {
            (error as? VaultError)?.code == code
        }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
