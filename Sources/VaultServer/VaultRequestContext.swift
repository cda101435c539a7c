public import Hummingbird
import NIOCore
public import TokenVault

/// The request context of the vault's routers: who is calling and from where.
public struct VaultRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``AuthenticationMiddleware`` for a valid API key.
    public var credential: Credential?
    /// The id part of the presented key, valid or not (for auditing refusals; never the secret).
    public var presentedCredentialID: String?
    /// The peer address, for the audit log.
    public let remoteAddress: String

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress.map(Self.describe) ?? "unknown"
    }

    /// Bodies are read explicitly with a per-route limit (see `JSONRequest`).
    public var maxUploadSize: Int { 1 << 20 }

    /// The caller's credential if it holds `scope`.
    /// - Throws: ``APIError`` 401 without a valid key, 403 without the scope.
    func require(_ scope: Scope) throws -> Credential {
        guard let credential else { throw APIError.unauthenticated }
        guard credential.allows(scope) else { throw APIError.forbidden(scope) }
        return credential
    }

    private static func describe(_ address: SocketAddress) -> String {
        switch address {
        case .v4, .v6: address.ipAddress ?? "unknown"
        case .unixDomainSocket: "unix"
        }
    }
}
