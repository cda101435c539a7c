import AsyncHTTPClient

extension HTTPClient {
    /// The client of the acquirer link. Redirects are refused, not followed: a 307 or 308 would
    /// re-send the request, card block included, to whatever host the answer names, and no
    /// acquirer protocol redirects an authorization. Process-wide and never shut down, as
    /// `HTTPClient.shared` is.
    static let acquirer: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }()
}
