public import Hummingbird
public import Logging
public import TokenVault

/// How `vault serve` listens.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var publicPort: Int

    public init(host: String = "127.0.0.1", publicPort: Int = 8080) {
        self.host = host
        self.publicPort = publicPort
    }
}

/// Builds the HTTP side of the vault.
public enum VaultApplication {
    /// The public router: tokenize and metadata. It has no detokenize route.
    public static func publicRouter(vault: Vault) -> Router<VaultRequestContext> {
        let router = Router(context: VaultRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: AuthenticationMiddleware(credentials: vault.credentials))
        router.get("/healthz") { _, _ in HTTPResponse.Status.ok }
        TokenController(tokens: vault.tokens).addRoutes(to: router)
        return router
    }

    /// The application `vault serve` runs: the public listener plus the maintenance service.
    public static func make(
        vault: Vault, configuration: ServerConfiguration, logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: publicRouter(vault: vault),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.publicPort), serverName: nil),
            services: [VaultMaintenanceService(vault: vault, logger: logger)],
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.publicPort)
            },
            logger: logger)
    }
}
