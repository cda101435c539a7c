import Audit
public import CardIssuing
public import CardTokens
public import Detokenization
public import HTTPListener
public import Hummingbird
public import Issuing
import Ledger
public import Logging
public import ServiceLifecycle
public import TokenVault
public import UnixSignals
public import Wallet

/// Builds the HTTP side of the vault: two listeners with disjoint routes.
public enum VaultApplication {
    /// The public router: tokenize and metadata, and the wallet and virtual-card routes when
    /// `wallets` is given. It has no detokenize or audit route.
    /// - Parameter tokenizeRateLimit: cards per second per credential; `nil` for no limit.
    public static func publicRouter(
        vault: Vault, wallets: WalletSide? = nil, tokenizeRateLimit: Double? = nil
    ) -> Router<VaultRequestContext> {
        router(vault: vault) { router in
            TokenController(tokens: vault.tokens, rateLimiter: tokenizeRateLimit.map { RateLimiter(rate: $0) })
                .addRoutes(to: router)
            if let wallets {
                WalletController(wallets: wallets.wallets).addRoutes(to: router)
                VirtualCardController(cards: wallets.virtualCards, network: wallets.network).addRoutes(to: router)
            }
        }
    }

    /// The wallet side over `wallet.db` in the vault's data folder. It reaches the vault only
    /// through token metadata, `authorizer` (use without reveal) and `issuer` (new cards come
    /// back as tokens).
    public static func walletSide(
        vault: Vault, authorizer: (any CardAuthorizing)?, issuer: (any CardIssuer)?,
        numbering: VirtualAccountNumbering = .default
    ) throws -> WalletSide {
        let ledger = try SQLiteLedger(directory: vault.paths.dataDirectory)
        let wallets = WalletService(
            store: try SQLiteWalletStore(ledger: ledger), cards: VaultCardDirectory(tokens: vault.tokens),
            authorizer: authorizer, numbering: numbering)
        let issuing = try SQLiteIssuingStore(ledger: ledger)
        return WalletSide(
            wallets: wallets, virtualCards: VirtualCardService(store: issuing, wallets: wallets, issuer: issuer),
            network: CardNetworkService(store: issuing))
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

    /// The card network's router (its own listener and credentials, scope `network`): the CDE
    /// checks the card data of each message, the wallet side decides from the token.
    public static func networkRouter(
        vault: Vault, issuer: VaultCardIssuer, network: CardNetworkService
    ) -> Router<VaultRequestContext> {
        router(vault: vault) { router in
            NetworkController(issuer: issuer, network: network).addRoutes(to: router)
        }
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

    /// The composition root: opens the vault, checks `wallet.db` (fingerprints re-read, the
    /// ledger's invariants recounted), and wires both listeners, the authorization gateway and
    /// the maintenance services. `vault serve` and the tests call it alike.
    /// - Parameter onListening: called with the listener's name (`public`, `detokenize`) and
    ///   its bound port once it accepts.
    /// - Throws: what opening the vault throws (``MasterKeyError``, ``VaultError``),
    ///   ``AcquirerEndpointError`` for a bad acquirer key file, ``LedgerError`` when `wallet.db`
    ///   fails its invariants.
    public static func build(
        _ configuration: VaultConfiguration, logger: Logger,
        onListening: @escaping @Sendable (_ listener: String, _ port: Int) async -> Void = { _, _ in }
    ) async throws -> VaultServices {
        let vault = try await Vault.open(
            paths: configuration.paths, logger: logger, cvvTimeToLive: configuration.cvvTimeToLive,
            similarCardLimit: configuration.similarCardLimit)
        let acquirer = try configuration.acquirer.map { acquirer throws(AcquirerEndpointError) in
            try AcquirerEndpoint(
                baseURL: acquirer.baseURL, publicKeyFile: acquirer.publicKeyFile, timeout: acquirer.timeout,
                pin: acquirer.pin)
        }
        let gateway = AuthorizationGateway(tokens: vault.tokens, audit: vault.audit, acquirer: acquirer, logger: logger)
        let cardIssuer = try VaultCardIssuer(
            tokens: vault.tokens, bin: configuration.issuingBIN, panLength: configuration.issuingPANLength,
            logger: logger)
        let walletSide = try walletSide(
            vault: vault, authorizer: gateway, issuer: cardIssuer, numbering: configuration.numbering)
        let wallets = walletSide.wallets
        // The ledger checks its invariants in every commit from that commit's changes; a full
        // recount at start also catches a wallet.db altered behind its back.
        try await wallets.rescopeCardFingerprints()
        try await wallets.ledger.verifyInvariants()

        func application(_ name: String, _ router: Router<VaultRequestContext>, port: Int) -> any Service {
            listener(router, host: configuration.host, port: port, limits: configuration.limits, logger: logger) {
                port in await onListening(name, port)
            }
        }
        // Shut down in reverse order: the listeners first, the head-file writer last.
        let services: [any Service] = [
            AuditHeadFileService(audit: vault.audit),
            VaultMaintenanceService(vault: vault, logger: logger),
            WalletMaintenanceService(
                wallets: wallets, retention: configuration.idempotencyRetention, network: walletSide.network,
                authorizationHold: .seconds(configuration.authorizationHoldDays * 86_400),
                topUpResolveAfter: .seconds(configuration.topUpResolveAfterSeconds),
                topUpAbandonAfter: .seconds(configuration.topUpAbandonAfterHours * 3600), logger: logger),
            application(
                "public",
                publicRouter(vault: vault, wallets: walletSide, tokenizeRateLimit: configuration.tokenizeRateLimit),
                port: configuration.publicPort),
            application(
                "detokenize",
                detokenizeRouter(
                    vault: vault, rateLimit: configuration.detokenizeRateLimit,
                    panDailyLimit: configuration.detokenizePANDailyLimit, logger: logger),
                port: configuration.detokenizePort),
            application(
                "network", networkRouter(vault: vault, issuer: cardIssuer, network: walletSide.network),
                port: configuration.networkPort),
        ]
        return VaultServices(
            vault: vault, wallets: wallets, virtualCards: walletSide.virtualCards, acquirer: acquirer,
            cardIssuer: cardIssuer, services: services, logger: logger)
    }
}

/// The services of the wallet side, over one `wallet.db`.
public struct WalletSide: Sendable {
    public let wallets: WalletService
    public let virtualCards: VirtualCardService
    /// The card network's messages, decided from tokens.
    public let network: CardNetworkService
}

/// What ``VaultApplication/build(_:logger:onListening:)`` wired: the vault, the wallet side and
/// the services that serve them.
public struct VaultServices: Sendable {
    public let vault: Vault
    public let wallets: WalletService
    public let virtualCards: VirtualCardService
    /// The acquirer top-ups are authorized with, if configured.
    public let acquirer: AcquirerEndpoint?
    /// Issues virtual cards inside the vault, under the configured BIN.
    public let cardIssuer: VaultCardIssuer
    /// Head-file writer, maintenance services, then the two listeners.
    public let services: [any Service]
    let logger: Logger

    /// The services in one group; `signals` end it gracefully (none for tests, which call
    /// `triggerGracefulShutdown()`).
    public func serviceGroup(signals: [UnixSignal] = [.sigterm, .sigint]) -> ServiceGroup {
        ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: signals, logger: logger))
    }

    /// Serves until SIGINT or SIGTERM.
    public func run() async throws {
        try await serviceGroup().run()
    }
}

/// Owns the loop that writes the audit head file while the server runs (coalescing bursts of
/// commits), and ends it, with whatever is pending written, on graceful shutdown: the ordering
/// that callers had to get right by hand is the service's lifetime, and no detached task is left.
struct AuditHeadFileService: Service {
    let audit: SQLiteAuditLog

    func run() async throws {
        await withGracefulShutdownHandler {
            await audit.writeHeadFiles()
        } onGracefulShutdown: {
            audit.finishHeadFileWrites()
        }
    }
}
