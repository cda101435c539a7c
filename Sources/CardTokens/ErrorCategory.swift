/// What kind of failure an error is, in terms of no transport: the server maps each category to
/// one HTTP status, in one place. Every domain error code names its category where it is
/// declared, so a new code cannot exist without one.
public enum ErrorCategory: Sendable, Hashable {
    /// The request is malformed: a field, a header, a cursor.
    case invalidInput
    /// What the request names does not exist (for this caller).
    case notFound
    /// The request clashes with the current state (a request still running, a value already taken).
    case conflict
    /// Well-formed, but the domain refuses it (insufficient funds, an expired card).
    case refused
    /// No valid credential.
    case unauthenticated
    /// A valid credential that may not do this.
    case forbidden
    /// Too much, too often: retry later.
    case rateLimited
    /// The service cannot serve this now (a dependency is missing or busy): retry later.
    case unavailable
    /// A system the service depends on did not answer in time; the outcome is unknown.
    case upstreamTimeout
    /// A system the service depends on failed or could not be reached.
    case upstreamFailed
    /// A fault of the service; the client is told nothing more.
    case `internal`
}

/// A domain error as a client may see it: a stable code, a category and a message built from
/// server-side values only (never a client-supplied id, reference or field value).
public protocol CategorizedError: Error, Sendable {
    var category: ErrorCategory { get }
    /// The stable code returned to clients as `error.code`.
    var errorCode: String { get }
    /// The message returned to clients; fixed text or server-side values only.
    var publicMessage: String { get }
    /// After how many seconds the same request may succeed, when retrying helps.
    var retryAfterSeconds: Int? { get }
}

extension CategorizedError {
    public var retryAfterSeconds: Int? { nil }
}

/// The code of a domain error: a stable string declared with its category (each type's `Code`
/// has a private initializer, so a code cannot exist without one).
public protocol DomainErrorCode: Sendable, Hashable, CustomStringConvertible {
    var rawValue: String { get }
    var category: ErrorCategory { get }
}

extension DomainErrorCode {
    public var description: String { rawValue }
}

/// A domain error of the one shape every module uses: an opaque code and a message built from
/// server-side values only. Its description is the type and code alone, since a description
/// lands in logs and interpolations; the message is in `debugDescription`.
public protocol DomainError: CategorizedError, CustomStringConvertible, CustomDebugStringConvertible {
    associatedtype Code: DomainErrorCode
    var code: Code { get }
    var message: String { get }
}

extension DomainError {
    public var category: ErrorCategory { code.category }
    public var errorCode: String { code.rawValue }
    public var publicMessage: String { message }
    public var description: String { "\(Self.self)(\(code))" }
    public var debugDescription: String { "\(Self.self)(\(code): \(message))" }
}
