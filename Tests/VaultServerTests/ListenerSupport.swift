import CDETestSupport
import Foundation
import HTTPListener
import Logging
import ServiceLifecycle
import TokenVault
import VaultServer
import VaultTestSupport

/// A real listener (``VaultApplication/listener(_:host:port:limits:logger:onListening:)``, as
/// `vault serve` runs it) on a loopback port, for raw-socket tests.
struct LiveListener: Sendable {
    let port: Int
    /// A key with the scopes `tokenize`, `tokens:read` and `tokens:delete`.
    let key: String
    let vault: Vault

    func connect() throws -> RawConnection { try RawConnection(port: port) }

    /// `GET /healthz` on a fresh connection; the status, or `nil` when the server ended the
    /// connection without a response.
    func healthz(on connection: RawConnection? = nil) async throws -> Int {
        let connection = try connection ?? connect()
        try await connection.send("GET /healthz HTTP/1.1\r\nHost: vault\r\n\r\n")
        return try await connection.readResponse().status
    }
}

/// Runs `body` against the public listener of a fresh vault under `limits`, stopped afterwards.
func withLiveListener<R: Sendable>(
    limits: ListenerLimits, detokenize: Bool = false, _ body: @Sendable (LiveListener) async throws -> R
) async throws -> R {
    try await withFreshVault("vault-listener-tests", logLevel: .info) { fresh in
        try await withLiveListener(
            vault: fresh.vault, logger: fresh.logger, limits: limits, detokenize: detokenize, body)
    }
}

private func withLiveListener<R: Sendable>(
    vault: Vault, logger: Logger, limits: ListenerLimits, detokenize: Bool,
    _ body: @Sendable (LiveListener) async throws -> R
) async throws -> R {
    let (_, key) = try await vault.credentials.create(
        name: "all", scopes: [.tokenize, .tokensRead, .tokensDelete], purposes: [])
    let router =
        detokenize
        ? VaultApplication.detokenizeRouter(vault: vault, rateLimit: nil, logger: logger)
        : VaultApplication.publicRouter(vault: vault)
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    let service = VaultApplication.listener(
        router, host: "127.0.0.1", port: 0, limits: limits, logger: logger
    ) { port in continuation.yield(port) }
    let task = Task {
        defer { continuation.finish() }
        try await service.run()
    }
    var iterator = ports.makeAsyncIterator()
    guard let port = await iterator.next() else {
        _ = await task.result
        throw RawConnection.Failure(description: "the listener did not start")
    }
    do {
        let result = try await body(LiveListener(port: port, key: key, vault: vault))
        task.cancel()
        _ = await task.result
        return result
    } catch {
        task.cancel()
        _ = await task.result
        throw error
    }
}
