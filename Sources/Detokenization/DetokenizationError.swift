public import CardTokens

/// Why a detokenize request was refused or failed. Messages never contain request data.
public struct DetokenizationError: Error, Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What kind of failure it is (the server maps it to a status; this module knows no HTTP).
    public let category: ErrorCategory
    /// A stable code, returned to clients as `error.code`.
    public let code: String
    public let message: String
    /// For a rate limit: when the same request may pass.
    public let retryAfterSeconds: Int?

    public init(_ category: ErrorCategory, code: String, message: String, retryAfterSeconds: Int? = nil) {
        self.category = category
        self.code = code
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// The type and code only: a description lands in logs and interpolations, so it carries no
    /// message (which may name paths, ids or versions); ``debugDescription`` has the details.
    public var description: String { "DetokenizationError(\(code))" }
    public var debugDescription: String { "DetokenizationError(\(code): \(message))" }
}

extension DetokenizationError: CategorizedError {
    public var errorCode: String { code }
    public var publicMessage: String { message }
}
