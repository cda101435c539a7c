public import Hummingbird
public import TokenVault

/// Resolves `Authorization: Bearer <key>` to a credential. Routes then require scopes; a
/// request without a valid key reaches them with no credential and gets a 401 there, so
/// `/healthz` stays open.
public struct AuthenticationMiddleware: RouterMiddleware {
    public typealias Context = VaultRequestContext
    let credentials: CredentialService

    public init(credentials: CredentialService) {
        self.credentials = credentials
    }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        if let header = request.headers[.authorization], header.hasPrefix("Bearer ") {
            context.credential = await credentials.authenticate(secret: String(header.dropFirst(7)))
        }
        return try await next(request, context)
    }
}
