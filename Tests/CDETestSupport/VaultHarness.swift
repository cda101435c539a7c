public import Audit
public import Foundation
public import InMemoryLogging
public import Logging
public import TokenVault
import VaultTestSupport

/// A vault under test and what it logged; the audit and log readers below come with it.
public protocol VaultHarness: Sendable {
    var vault: Vault { get }
    /// Everything the vault (and what was built on it) logged.
    var logs: InMemoryLogHandler { get }
}

extension VaultHarness {
    /// Every audit record, oldest first.
    public func auditRecords() async throws -> [AuditRecord] {
        try await vault.audit.records(limit: 1_000_000)
    }

    /// The records appended while `body` ran.
    public func newAuditRecords<R>(
        during body: () async throws -> R
    ) async throws -> (result: R, records: [AuditRecord]) {
        let before = try await auditRecords().last?.sequence ?? 0
        let result = try await body()
        return (result, try await vault.audit.records(after: before, limit: 1_000_000))
    }

    /// Everything in the audit log as text: every field of every record, as stored.
    public func renderedAudit() async throws -> String {
        try await auditRecords().map { record in
            let event = record.event
            return [
                "\(record.sequence)", event.actor, event.type, event.outcome.rawValue, event.origin,
                event.objects.joined(separator: ","), event.purpose ?? "-", event.reference ?? "-",
                event.detail ?? "-",
            ].joined(separator: " | ")
        }.joined(separator: "\n")
    }

    /// Everything logged, one line per entry.
    public var renderedLogs: String { logs.entries.map(TestLog.rendered).joined(separator: "\n") }
}

/// A freshly initialised vault in a temporary folder, and what it logged.
public struct FreshVault: VaultHarness {
    public let vault: Vault
    public let paths: VaultPaths
    /// The temporary folder that holds `data/` and `Keys/`.
    public let root: String
    public let logger: Logger
    public let logs: InMemoryLogHandler
}

/// Runs `body` with a vault initialised and opened in a new temporary folder named after
/// `prefix` (removed afterwards), logging at `logLevel` and above into ``FreshVault/logs``.
public func withFreshVault<R>(
    _ prefix: String, cvvTimeToLive: TimeInterval = 3600, logLevel: Logger.Level = .trace,
    _ body: (FreshVault) async throws -> R
) async throws -> R {
    try await withTemporaryDirectory(prefix) { root in
        let paths = VaultPaths(dataDirectory: root + "/data", keysDirectory: root + "/Keys")
        let (logger, logs) = TestLog.capturing(level: logLevel)
        _ = try await Vault.initialize(paths: paths, logger: logger)
        let vault = try await Vault.open(paths: paths, logger: logger, cvvTimeToLive: cvvTimeToLive)
        return try await body(FreshVault(vault: vault, paths: paths, root: root, logger: logger, logs: logs))
    }
}
