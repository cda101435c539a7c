/// Why a detokenize request was refused or failed. Messages never contain request data.
public struct DetokenizationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// How the refusal maps onto HTTP.
    public enum Kind: Sendable, Hashable {
        case badRequest
        case unauthenticated
        case forbidden
        case rateLimited(retryAfterSeconds: Int)
        case auditUnavailable
        /// A fault of the service after the request was accepted (e.g. a corrupt record).
        case internalFailure
    }

    public let kind: Kind
    /// A stable code, returned to clients as `error.code`.
    public let code: String
    public let message: String

    public init(_ kind: Kind, code: String, message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    public var description: String { "DetokenizationError(\(code): \(message))" }
}
