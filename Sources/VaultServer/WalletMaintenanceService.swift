import Foundation
public import Issuing
public import Logging
public import ServiceLifecycle
public import Wallet

/// Background upkeep of the wallet side, once a minute: forgets Idempotency-Key outcomes older
/// than the retention (24 hours by default, as Stripe keeps them), so `wallet.db` does not keep
/// every key a client ever sent; releases the holds of card authorizations not cleared within
/// `authorizationHold` (7 days by default); and settles top-ups whose acquirer answer was lost
/// (``WalletService/resolveUnknownTopUps(olderThan:abandonAfter:now:)``).
public struct WalletMaintenanceService: Service {
    let wallets: WalletService
    let retention: Duration
    let network: CardNetworkService?
    let authorizationHold: Duration
    let topUpResolveAfter: Duration
    let topUpAbandonAfter: Duration
    let interval: Duration
    let logger: Logger

    public init(
        wallets: WalletService, retention: Duration = .seconds(24 * 3600), network: CardNetworkService? = nil,
        authorizationHold: Duration = .seconds(7 * 86_400), topUpResolveAfter: Duration = .seconds(120),
        topUpAbandonAfter: Duration = .seconds(24 * 3600), interval: Duration = .seconds(60), logger: Logger
    ) {
        self.wallets = wallets
        self.retention = retention
        self.network = network
        self.authorizationHold = authorizationHold
        self.topUpResolveAfter = topUpResolveAfter
        self.topUpAbandonAfter = topUpAbandonAfter
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                await purgeOnce()
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
    }

    /// One purge pass; a failure is logged and the next pass tries again.
    func purgeOnce(now: Date = Date()) async {
        let cutoff = now.addingTimeInterval(-TimeInterval(retention.components.seconds))
        do {
            let purged = try await wallets.purgeIdempotencyOutcomes(before: cutoff)
            if purged > 0 { logger.info("idempotency outcomes purged", metadata: ["count": "\(purged)"]) }
        } catch {
            logger.error(
                "maintenance task failed",
                metadata: ["task": "idempotency purge", "error": "\(String(reflecting: error))"])
        }
        do {
            let resolution = try await wallets.resolveUnknownTopUps(
                olderThan: TimeInterval(topUpResolveAfter.components.seconds),
                abandonAfter: TimeInterval(topUpAbandonAfter.components.seconds), now: now)
            if resolution.decided > 0 {
                logger.info("top-ups with a lost acquirer answer settled", metadata: ["count": "\(resolution.decided)"])
            }
            for id in resolution.abandoned {
                // The acquirer may hold a charge the wallet never got: someone must reconcile it.
                logger.error("top-up voided without the acquirer's answer; reconcile it", metadata: ["top_up": "\(id)"])
            }
        } catch {
            logger.error(
                "maintenance task failed",
                metadata: ["task": "top-up resolution", "error": "\(String(reflecting: error))"])
        }
        guard let network else { return }
        do {
            let expired = try await network.expireHolds(olderThan: TimeInterval(authorizationHold.components.seconds))
            if expired > 0 { logger.info("card authorization holds expired", metadata: ["count": "\(expired)"]) }
        } catch {
            logger.error(
                "maintenance task failed",
                metadata: ["task": "authorization hold expiry", "error": "\(String(reflecting: error))"])
        }
    }
}
