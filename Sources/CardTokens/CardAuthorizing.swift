/// A merchant-initiated charge of a card on file, in minor units.
public struct AuthorizationRequest: Sendable, Hashable {
    public var token: Token
    /// Minor units of `currency`, positive.
    public var amount: Int64
    /// ISO 4217 alphabetic code, e.g. `EUR`.
    public var currency: String
    /// Unique per charge and the same on every retry of it: the acquirer answers a repeated
    /// reference with its first answer, so a retry after a timeout can never charge twice.
    public var reference: String
    /// Who asked (a credential id), for the audit record; never a secret.
    public var requestedBy: String
    /// Where the request came from (the remote address of the HTTP caller), for the audit
    /// record's origin (PCI DSS 10.2.2); `nil` when there is no such caller.
    public var origin: String?
    /// The tenant the token must belong to (the caller's): another tenant's token is not found.
    public var tenant: String

    public init(
        token: Token, amount: Int64, currency: String, reference: String, requestedBy: String,
        tenant: String = Principal.defaultTenant, origin: String? = nil
    ) {
        self.token = token
        self.amount = amount
        self.currency = currency
        self.reference = reference
        self.requestedBy = requestedBy
        self.origin = origin
        self.tenant = tenant
    }
}

/// What the acquirer decided. Holds no card data: the caller learns approved or declined, an
/// authorization code and the acquirer's reference, nothing else.
public struct AuthorizationOutcome: Sendable, Hashable, Codable {
    public enum Decision: String, Sendable, Hashable, Codable {
        case approved, declined
    }

    public var decision: Decision
    /// The issuer's approval code (approved only).
    public var authCode: String?
    /// The acquirer's id of this authorization.
    public var acquirerReference: String
    /// Why it was declined (declined only), e.g. `do_not_honor`, `insufficient_funds`,
    /// `incorrect_cvv`, `expired_card`, `amount_limit_exceeded`.
    public var declineCode: String?

    public init(decision: Decision, authCode: String?, acquirerReference: String, declineCode: String?) {
        self.decision = decision
        self.authCode = authCode
        self.acquirerReference = acquirerReference
        self.declineCode = declineCode
    }
}

/// Why an authorization has no outcome. Codes are stable; messages hold no card data.
public struct AuthorizationError: Error, Sendable, Hashable {
    public struct Code: DomainErrorCode {
        public let rawValue: String
        /// What kind of failure it is, declared with the code (a code cannot exist without one).
        /// The categories are those of the wallet errors each code becomes for a top-up.
        public let category: ErrorCategory
        private init(_ rawValue: String, _ category: ErrorCategory) {
            self.rawValue = rawValue
            self.category = category
        }

        /// The token was never issued or has been deleted. Refused, not not-found: the caller
        /// names a card on file, which exists; its token is gone from the vault.
        public static let tokenNotFound = Self("token_not_found", .refused)
        /// The request itself is malformed (amount, currency, reference). A fault of the service:
        /// the vault's own caller builds the request from input it has already checked.
        public static let invalidRequest = Self("invalid_request", .internal)
        /// No acquirer is configured.
        public static let notConfigured = Self("acquirer_not_configured", .unavailable)
        /// The acquirer did not answer in time: the outcome is unknown. Retry with the same reference.
        public static let acquirerTimeout = Self("acquirer_timeout", .upstreamTimeout)
        /// The acquirer could not be reached or answered with a 5xx. Retry with the same reference.
        public static let acquirerUnavailable = Self("acquirer_unavailable", .upstreamFailed)
        /// The vault could not complete the request (e.g. the audit log refused the write).
        public static let internalFailure = Self("internal_failure", .internal)
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Whether retrying with the same reference may succeed.
    public var isRetryable: Bool { code == .acquirerTimeout || code == .acquirerUnavailable }
}

extension AuthorizationError: DomainError {}

/// What the wallet side may ask of the vault to charge a card on file: use without reveal.
/// The implementation (in `Detokenization`) detokenizes under audit (purpose `authorization`),
/// uses a held CVV at most once and deletes it, calls the acquirer, and returns only the outcome.
public protocol CardAuthorizing: Sendable {
    func authorize(_ request: AuthorizationRequest) async throws(AuthorizationError) -> AuthorizationOutcome
    /// The acquirer's decision on the authorization sent under `reference`, asked again (for a
    /// request whose answer was lost: a timeout, a 5xx, a crash); `nil` if the acquirer never
    /// received it. Reveals no card data.
    /// - Throws: `acquirer_timeout` / `acquirer_unavailable` when the acquirer cannot say now.
    func outcome(ofReference reference: String) async throws(AuthorizationError) -> AuthorizationOutcome?
}
