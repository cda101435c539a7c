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

    /// The status of each wallet refusal: 400 malformed, 404 unknown resource, 409 a request
    /// with the same Idempotency-Key still running, 422 well-formed but refused, 5xx the
    /// acquirer or the service.
    static func status(of code: WalletError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidOwnerRef, .invalidIdempotencyKey, .invalidCursor, .invalidIBAN: .badRequest
        case .walletNotFound, .cardNotFound: .notFound
        case .idempotencyKeyInUse: .conflict
        case .unsupportedCurrency, .currencyMismatch, .invalidAmount, .tokenNotFound, .cardExpired, .sameWallet,
            .insufficientFunds, .amountOverflow, .idempotencyKeyReused:
            .unprocessableContent
        case .acquirerTimeout: .gatewayTimeout
        case .acquirerUnavailable: .badGateway
        case .acquirerNotConfigured, .accountNumbersExhausted, .invalidAccountNumbering: .serviceUnavailable
        default: .internalServerError
        }
    }

    /// The API form of any error thrown while handling a request.
    static func from(_ error: any Error) -> APIError? {
        switch error {
        case let error as APIError:
            return error
        case let error as CardValidationError:
            return APIError(.badRequest, code: error.code.rawValue, message: error.message)
        case let error as VaultError:
            switch error.code {
            case .tokenNotFound: return APIError(.notFound, code: error.code.rawValue, message: "no such token")
            case .tokenSpaceExhausted, .dedupeExpiryMismatch:
                return APIError(.conflict, code: error.code.rawValue, message: error.message)
            case .similarCardsLimit:
                return APIError(.tooManyRequests, code: error.code.rawValue, message: error.message)
            case .invalidArgument: return APIError(.badRequest, code: error.code.rawValue, message: error.message)
            case .keyVersionActive:
                var busy = APIError(.serviceUnavailable, code: "retry", message: error.message)
                busy.headers = [.retryAfter: "1"]
                return busy
            default: return nil
            }
        case let error as WalletError:
            var apiError = APIError(status(of: error.code), code: error.code.rawValue, message: error.message)
            if error.isRetryable { apiError.headers = [.retryAfter: "1"] }
            return apiError
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
