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
        if let header = request.headers[.authorization], let secret = Self.bearerCredentials(header) {
            context.credential = await credentials.authenticate(secret: secret)
            // A key of the wrong shape is recorded as a fixed marker, never as sent.
            context.presentedCredentialID = CredentialService.id(ofSecret: secret) ?? "malformed"
        }
        return try await next(request, context)
    }

    /// The credentials of an `Authorization: Bearer <credentials>` header. The scheme name is
    /// case-insensitive (RFC 9110 §11.1) and followed by one or more spaces.
    static func bearerCredentials(_ header: String) -> String? {
        guard let space = header.firstIndex(of: " "), header[..<space].lowercased() == "bearer" else { return nil }
        let credentials = header[space...].drop { $0 == " " }
        return credentials.isEmpty ? nil : String(credentials)
    }
}
