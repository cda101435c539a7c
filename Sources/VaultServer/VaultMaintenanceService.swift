public import Logging
public import ServiceLifecycle
public import TokenVault

/// Background upkeep of a running server: reloads the key ring and credentials every second
/// (so a `vault keys rotate` or `vault credentials revoke` from the CLI takes effect within
/// seconds, without a restart) and purges expired CVVs.
public struct VaultMaintenanceService: Service {
    let vault: Vault
    let refreshInterval: Duration
    let purgeInterval: Duration
    let logger: Logger

    public init(vault: Vault, refreshInterval: Duration = .seconds(1), purgeInterval: Duration = .seconds(30), logger: Logger) {
        self.vault = vault
        self.refreshInterval = refreshInterval
        self.purgeInterval = purgeInterval
        self.logger = logger
    }

    public func run() async throws {
        var sincePurge = Duration.zero
        _ = try? await vault.tokens.purgeExpiredCVVs()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            do {
                try await Task.sleep(for: refreshInterval)
            } catch {
                return
            }
            do {
                let before = vault.keyRing.active.version
                try await vault.keys.refresh()
                try await vault.credentials.reload()
                let after = vault.keyRing.active.version
                if after != before {
                    logger.notice("active data key changed", metadata: ["active_version": "\(after)"])
                }
                sincePurge += refreshInterval
                if sincePurge >= purgeInterval {
                    sincePurge = .zero
                    try await vault.tokens.purgeExpiredCVVs()
                }
            } catch {
                logger.error("maintenance failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
