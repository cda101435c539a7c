public import CardTokens

/// A failure of a vault operation. Messages name objects (paths, versions, token ids) but never
/// a PAN, a CVV or key material.
public struct VaultError: Error, Sendable, Hashable {
    /// A stable error code (returned to API clients and used in tests).
    public struct Code: DomainErrorCode {
        public let rawValue: String
        /// What kind of failure it is, declared with the code (a code cannot exist without one).
        public let category: ErrorCategory
        private init(_ rawValue: String, _ category: ErrorCategory) {
            self.rawValue = rawValue
            self.category = category
        }

        public static let notInitialized = Self("vault_not_initialized", .internal)
        public static let alreadyInitialized = Self("vault_already_initialized", .conflict)
        public static let wrongMasterKey = Self("master_key_wrong", .internal)
        public static let tokenNotFound = Self("token_not_found", .notFound)
        public static let tokenSpaceExhausted = Self("token_space_exhausted", .conflict)
        public static let recordCorrupt = Self("record_corrupt", .internal)
        public static let unknownKeyVersion = Self("key_version_unknown", .internal)
        public static let keyVersionActive = Self("key_version_active", .unavailable)
        public static let keyVersionRetired = Self("key_version_retired", .conflict)
        public static let keyVersionInUse = Self("key_version_in_use", .conflict)
        public static let sameMasterKey = Self("master_key_unchanged", .invalidInput)
        /// Another process installed a new master key while a key-ring command ran.
        public static let masterKeyChanged = Self("master_key_changed", .conflict)
        /// The key-ring lock could not be taken.
        public static let keyRingLock = Self("key_ring_lock_failed", .unavailable)
        public static let credentialNotFound = Self("credential_not_found", .notFound)
        public static let invalidArgument = Self("invalid_argument", .invalidInput)
        /// A dedupe hit whose stored expiry differs from the request's.
        public static let dedupeExpiryMismatch = Self("dedupe_expiry_mismatch", .conflict)
        /// Too many distinct PANs sharing one BIN and last four from one principal (``SimilarCardGuard``).
        public static let similarCardsLimit = Self("similar_cards_limit", .rateLimited)
        /// Card issuing drew only card numbers the vault already holds, attempt after attempt:
        /// the BIN's number space is (nearly) full.
        public static let panSpaceExhausted = Self("issuing_pan_space_exhausted", .conflict)

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
}

extension VaultError: DomainError {
    /// A rotation that kept changing the active key mid-request: the client retries (code `retry`).
    public var errorCode: String { code == .keyVersionActive ? "retry" : code.rawValue }
    /// Fixed text where the message could name what the client sent.
    public var publicMessage: String { code == .tokenNotFound ? "no such token" : message }
    public var retryAfterSeconds: Int? { code == .keyVersionActive ? 1 : nil }
}
