public import Logging
public import ServiceLifecycle
public import TokenVault

/// Background upkeep of a running server: reloads the key ring and credentials every second
/// (so a `vault keys rotate`, `rotate-master` or `credentials revoke` from the CLI takes effect
/// within seconds, without a restart), truncates `vault.db-wal` within a second of a delete or
/// a CVV use (coalesced, so requests never wait for a checkpoint), and every purge interval
/// purges expired CVVs, destroys the CVV keys past their time and truncates the WAL whatever
/// happened (a CLI command whose own truncation readers blocked). Each task fails on its own: a
/// key-ring problem never stops revocations, the CVV purge or the WAL truncation.
public struct VaultMaintenanceService: Service {
    let vault: Vault
    let refreshInterval: Duration
    let purgeInterval: Duration
    let logger: Logger

    public init(
        vault: Vault, refreshInterval: Duration = .seconds(1), purgeInterval: Duration = .seconds(30), logger: Logger
    ) {
        self.vault = vault
        self.refreshInterval = refreshInterval
        self.purgeInterval = purgeInterval
        self.logger = logger
    }

    public func run() async throws {
        // Stop at once on SIGTERM/SIGINT rather than after the current sleep.
        await cancelWhenGracefulShutdown { await loop() }
    }

    private func loop() async {
        var sincePurge = purgeInterval
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let before = vault.keyRing.active.version
            await attempt("key ring reload") { try await vault.refreshKeys() }
            let after = vault.keyRing.active.version
            if after != before {
                logger.notice("active data key changed", metadata: ["active_version": "\(after)"])
            }
            await attempt("credential reload") { try await vault.credentials.reload() }
            if sincePurge >= purgeInterval {
                sincePurge = .zero
                await attempt("CVV purge") { _ = try await vault.tokens.purgeExpiredCVVs() }
                vault.database.needsScrub()
            }
            await vault.database.scrubIfNeeded()
            do {
                try await Task.sleep(for: refreshInterval)
            } catch {
                return
            }
            sincePurge += refreshInterval
        }
    }

    private func attempt(_ task: String, _ body: () async throws -> Void) async {
        do {
            try await body()
        } catch {
            logger.error(
                "maintenance task failed", metadata: ["task": "\(task)", "error": "\(String(reflecting: error))"])
        }
    }
}
