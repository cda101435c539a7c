import Audit
public import CardTokens
public import Detokenization
public import HTTPListener
public import Hummingbird
import Ledger
public import Logging
public import ServiceLifecycle
public import TokenVault
import UnixSignals
public import Wallet

/// How `vault serve` listens.
public struct ServerConfiguration: Sendable {
    public var host: String
    /// The public API: tokenize, metadata, delete.
    public var publicPort: Int
    /// The detokenize listener: detokenize and audit routes only.
    public var detokenizePort: Int
    /// Tokens detokenized per second per credential (bursts up to the same number); `nil`
    /// for no limit.
    public var detokenizeRateLimit: Double?
    /// Full PANs one credential may reveal per UTC day; `nil` for no limit.
    public var detokenizePANDailyLimit: Int?
    /// Cards tokenized per second per credential (bursts up to the same number); `nil` for no limit.
    public var tokenizeRateLimit: Double?
    /// How long wallet Idempotency-Key outcomes are kept.
    public var idempotencyRetention: Duration
    /// Timeouts and the connection cap, for each listener on its own.
    public var limits: ListenerLimits

    public init(
        host: String = "127.0.0.1", publicPort: Int = 8080, detokenizePort: Int = 8081,
        detokenizeRateLimit: Double? = 1000, detokenizePANDailyLimit: Int? = 100_000,
        tokenizeRateLimit: Double? = 2000, idempotencyRetention: Duration = .seconds(24 * 3600),
        limits: ListenerLimits = ListenerLimits()
    ) {
        self.host = host
        self.publicPort = publicPort
        self.detokenizePort = detokenizePort
        self.detokenizeRateLimit = detokenizeRateLimit
        self.detokenizePANDailyLimit = detokenizePANDailyLimit
        self.tokenizeRateLimit = tokenizeRateLimit
        self.idempotencyRetention = idempotencyRetention
        self.limits = limits
    }
}

/// Builds the HTTP side of the vault: two listeners with disjoint routes.
public enum VaultApplication {
    /// The public router: tokenize and metadata, and the wallet routes when `wallets` is given.
    /// It has no detokenize or audit route.
    /// - Parameter tokenizeRateLimit: cards per second per credential; `nil` for no limit.
    public static func publicRouter(
        vault: Vault, wallets: WalletService? = nil, tokenizeRateLimit: Double? = nil
    ) -> Router<VaultRequestContext> {
        router(vault: vault) { router in
            TokenController(tokens: vault.tokens, rateLimiter: tokenizeRateLimit.map { RateLimiter(rate: $0) })
                .addRoutes(to: router)
            if let wallets {
                WalletController(wallets: wallets).addRoutes(to: router)
            }
        }
    }

    /// The wallet side over `wallet.db` in the vault's data folder. It reaches the vault only
    /// through token metadata and `authorizer` (use without reveal).
    public static func walletService(
        vault: Vault, authorizer: (any CardAuthorizing)?, numbering: VirtualAccountNumbering = .default
    ) throws -> WalletService {
        try WalletService(
            ledger: Ledger(directory: vault.paths.dataDirectory), cards: VaultCardDirectory(tokens: vault.tokens),
            authorizer: authorizer, numbering: numbering)
    }

    /// The detokenize router (its own listener and credentials): detokenize and audit only.
    /// - Parameters:
    ///   - rateLimit: tokens per second per credential (bursts up to the same number).
    ///   - panDailyLimit: full PANs per credential per UTC day.
    public static func detokenizeRouter(
        vault: Vault, rateLimit: Double?, panDailyLimit: Int? = nil, logger: Logger
    ) -> Router<VaultRequestContext> {
        detokenizeRouter(
            vault: vault,
            detokenizer: Detokenizer(
                tokens: vault.tokens, audit: vault.audit,
                rateLimiter: rateLimit.map { RateLimiter(rate: $0) },
                panQuota: panDailyLimit.map(DailyQuota.init(limit:)), logger: logger))
    }

    /// The detokenize router around a given ``Detokenizer`` (tests use one whose audit log fails).
    public static func detokenizeRouter(vault: Vault, detokenizer: Detokenizer) -> Router<VaultRequestContext> {
        router(vault: vault) { router in
            DetokenizeController(detokenizer: detokenizer, audit: vault.audit).addRoutes(to: router)
        }
    }

    /// A router with the error envelope, authentication, `/healthz`, the routes `addRoutes`
    /// adds, and `405 method_not_allowed` for a known path under another method.
    private static func router(
        vault: Vault, _ addRoutes: (Router<VaultRequestContext>) -> Void
    ) -> Router<VaultRequestContext> {
        let router = Router(context: VaultRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: AuthenticationMiddleware(credentials: vault.credentials))
        router.get("/healthz") { _, _ in HTTPResponse.Status.ok }
        addRoutes(router)
        router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
        return router
    }

    /// One listener serving `router` on `host:port` under `limits`; `vault serve` runs two, and
    /// tests run one on port 0.
    /// - Parameter onListening: called with the bound port once it accepts.
    public static func listener(
        _ router: Router<VaultRequestContext>, host: String, port: Int, limits: ListenerLimits, logger: Logger,
        onListening: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) -> some Service {
        Application(
            router: router, server: .limitedHTTP1(limits),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    /// Runs both listeners and the maintenance services (vault; wallet, when given) until SIGINT or SIGTERM.
    /// - Parameter onListening: called with the listener's name and port once it accepts.
    public static func run(
        vault: Vault, wallets: WalletService?, configuration: ServerConfiguration, logger: Logger,
        onListening: @escaping @Sendable (_ listener: String, _ port: Int) async -> Void = { _, _ in }
    ) async throws {
        func application(_ name: String, _ router: Router<VaultRequestContext>, port: Int) -> some Service {
            listener(
                router, host: configuration.host, port: port, limits: configuration.limits, logger: logger
            ) { port in await onListening(name, port) }
        }
        let walletMaintenance = wallets.map {
            ServiceGroupConfiguration.ServiceConfiguration(
                service: WalletMaintenanceService(
                    wallets: $0, retention: configuration.idempotencyRetention, logger: logger))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(
                        service: application(
                            "public",
                            publicRouter(
                                vault: vault, wallets: wallets, tokenizeRateLimit: configuration.tokenizeRateLimit),
                            port: configuration.publicPort)),
                    .init(
                        service: application(
                            "detokenize",
                            detokenizeRouter(
                                vault: vault, rateLimit: configuration.detokenizeRateLimit,
                                panDailyLimit: configuration.detokenizePANDailyLimit, logger: logger),
                            port: configuration.detokenizePort)),
                    .init(service: VaultMaintenanceService(vault: vault, logger: logger)),
                ] + (walletMaintenance.map { [$0] } ?? []),
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        // Under load, commits hand the audit head to a background writer (coalesced); whatever
        // is still pending is written on the way out.
        vault.audit.deferHeadFileWrites()
        defer { vault.audit.flushHeadFile() }
        try await group.run()
    }
}
