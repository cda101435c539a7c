import CardTokens
import HTTPListener
public import Hummingbird
import NIOCore
import TokenVault
import Wallet

/// An error as the API returns it: an HTTP status and `{"error": {"code", "message"}}`.
///
/// Every message is written here or in the domain modules and never echoes request data, so
/// no PAN or CVV can leave through an error.
public struct APIError: Error, HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    struct Envelope: Encodable {
        struct Body: Encodable {
            var code: String
            var message: String
        }
        var error: Body
    }

    var envelope: Envelope { Envelope(error: .init(code: code, message: message)) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var response = try JSONResponse.make(envelope, status: status)
        response.headers.append(contentsOf: headers)
        return response
    }

    /// A 401 carries the challenge the client must answer (RFC 9110 §11.6.1, RFC 6750 §3).
    static let unauthenticated: APIError = {
        var error = APIError(
            .unauthorized, code: "unauthenticated", message: "missing or invalid API key (Authorization: Bearer <key>)")
        error.headers[.wwwAuthenticate] = "Bearer"
        return error
    }()
    static func forbidden(_ scope: Scope) -> APIError {
        APIError(.forbidden, code: "forbidden", message: "this API key lacks scope \(scope)")
    }
    static let bodyTooLarge = APIError(.contentTooLarge, code: "body_too_large", message: "request body is too large")
    static let bodyIncomplete = APIError(
        .requestTimeout, code: "request_timeout", message: "the request body did not arrive in full")
    static let internalError = APIError(.internalServerError, code: "internal_error", message: "internal error")

    /// The API form of a domain error: the status its category maps to, its code and message,
    /// `Retry-After` when retrying helps; a 401 with its challenge.
    init(_ error: any CategorizedError) {
        if error.category == .unauthenticated {
            self = .unauthenticated
            return
        }
        self.init(error.category.status, code: error.errorCode, message: error.publicMessage)
        if let seconds = error.retryAfterSeconds { headers[.retryAfter] = String(seconds) }
    }

    /// The API form of any error thrown while handling a request.
    static func from(_ error: any Error) -> APIError? {
        switch error {
        case let error as APIError:
            return error
        case let error as VaultError where error.category == .internal:
            // Faults of the vault are logged by type, and the client is told nothing more.
            return nil
        case let error as any CategorizedError:
            return APIError(error)
        case is NIOTooManyBytesError:
            return bodyTooLarge
        case let error as MethodNotAllowedError:
            var apiError = APIError(error.status, code: error.code, message: error.message)
            apiError.headers[.allow] = error.allowedHeader
            return apiError
        case let error as HTTPError:
            let code =
                switch error.status {
                case .notFound: "not_found"
                case .methodNotAllowed: "method_not_allowed"
                case .contentTooLarge: "body_too_large"
                default: error.status.code < 500 ? "bad_request" : "internal_error"
                }
            return APIError(error.status, code: code, message: error.status.reasonPhrase.lowercased())
        default:
            return nil
        }
    }
}
