public import CardTokens
public import HTTPTypes

extension ErrorCategory {
    /// The one place a category becomes an HTTP status, for every listener (the vault's and the
    /// acquirer simulator's); exhaustive, so a new category cannot fall through to a 500.
    public var status: HTTPResponse.Status {
        switch self {
        case .invalidInput: .badRequest
        case .notFound: .notFound
        case .conflict: .conflict
        case .refused: .unprocessableContent
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        case .rateLimited: .tooManyRequests
        case .unavailable: .serviceUnavailable
        case .upstreamTimeout: .gatewayTimeout
        case .upstreamFailed: .badGateway
        case .internal: .internalServerError
        }
    }
}
