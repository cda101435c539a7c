import AcquirerSimulator
import Audit
import CDETestSupport
import CardTokens
import Detokenization
import Foundation
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import NIOCore
import Testing
import TokenVault
import VaultCrypto
import VaultTestSupport

// Helpers for the acquirer suites (cards, folders and audit logs that misbehave come from
// VaultTestSupport and CDETestSupport).

// MARK: - Cards

extension TestCard {
    /// Always declined `do_not_honor`.
    static let declined = TestCard(pan: "4000000000000002", brand: .visa)
    /// Always declined `insufficient_funds`.
    static let insufficientFunds = TestCard(pan: "4000000000009995", brand: .visa)

    static let all: [TestCard] = [.visa, .visa2, .mastercard, .amex, .declined, .insufficientFunds]

    /// The card block as the gateway writes it.
    var blockJSON: String {
        var json = #"{"pan":"\#(pan)","exp_month":\#(expMonth),"exp_year":\#(expYear)"#
        if let cvv { json += #","cvv":"\#(cvv)""# }
        return json + "}"
    }
}

// MARK: - The simulator

/// A simulator on a temporary state folder, and what it logged.
struct SimulatorHarness: Sendable {
    let simulator: AcquirerSimulator
    let directory: String
    let logs: InMemoryLogHandler

    /// `card` sealed to the simulator's public key, as base64.
    func seal(_ card: TestCard) throws -> String {
        try seal(json: card.blockJSON)
    }

    func seal(json: String) throws -> String {
        let sealed = try Array(json.utf8).withUnsafeBytes {
            try SealedBox.seal($0, to: simulator.keyPair.publicKey)
        }
        return Data(sealed).base64EncodedString()
    }

    /// An authorization body.
    func body(_ card: TestCard, amount: Int64 = 1000, currency: String = "EUR", reference: String) throws -> String {
        #"{"reference":"\#(reference)","amount":\#(amount),"currency":"\#(currency)","card":"\#(try seal(card))"}"#
    }
}

/// Runs `body` with a simulator on a fresh state folder.
func withSimulator<R>(
    configuration: AcquirerConfiguration = .init(), _ body: (SimulatorHarness) async throws -> R
) async throws -> R {
    try await withTemporaryDirectory("acquirer-tests") { root in
        let (logger, logs) = TestLog.capturing()
        let directory = root + "/acquirer"
        let simulator = try AcquirerSimulator.open(
            stateDirectory: directory, configuration: configuration, logger: logger)
        return try await body(SimulatorHarness(simulator: simulator, directory: directory, logs: logs))
    }
}

/// A reply from the simulator's router.
struct Reply: Sendable, CustomStringConvertible {
    var status: HTTPResponse.Status
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }
    var description: String { "\(status.code) \(text)" }

    /// The JSON object of the body.
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }

    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
}

/// Sends requests straight to the simulator's router (no socket).
struct RouterClient: Sendable {
    let client: any TestClientProtocol

    func post(_ uri: String, _ body: String) async throws -> Reply {
        try await client.execute(
            uri: uri, method: .post, headers: [.contentType: "application/json"],
            body: ByteBuffer(string: body)
        ) { response in
            Reply(status: response.status, body: Array(response.body.readableBytesView))
        }
    }

    func get(_ uri: String) async throws -> Reply {
        try await client.execute(uri: uri, method: .get) { response in
            Reply(status: response.status, body: Array(response.body.readableBytesView))
        }
    }
}

/// Runs `body` with the simulator's router behind HummingbirdTesting's router transport.
func withSimulatorRouter<R: Sendable>(
    configuration: AcquirerConfiguration = .init(),
    _ body: @Sendable (SimulatorHarness, RouterClient) async throws -> R
) async throws -> R {
    try await withSimulator(configuration: configuration) { harness in
        let app = Application(router: AcquirerServer.router(simulator: harness.simulator), logger: TestLog.quiet())
        return try await app.test(.router) { client in try await body(harness, RouterClient(client: client)) }
    }
}

// MARK: - Vault, simulator on a loopback port, gateway

/// A vault in a temporary folder, a simulator serving on a loopback port, and a gateway between
/// them; everything the vault, the gateway and the simulator logged lands in `logs`.
struct GatewayHarness: VaultHarness {
    let vault: Vault
    let simulator: AcquirerSimulator
    let server: RunningAcquirer
    let simulatorDirectory: String
    let logger: Logger
    let logs: InMemoryLogHandler

    /// The simulator's endpoint, its public key read from `acquirer.pub` as `vault serve` would.
    /// The timeout is generous unless a test is about it: a loaded machine must not turn a slow
    /// answer into a timeout.
    func endpoint(timeout: Duration = .seconds(60)) throws -> AcquirerEndpoint {
        try AcquirerEndpoint(
            baseURL: server.baseURL, publicKeyFile: simulatorDirectory + "/" + AcquirerKeyPair.publicKeyFileName,
            timeout: timeout)
    }

    /// A gateway on this vault (its audit log unless told otherwise).
    func gateway(
        audit: (any AuditLog)? = nil, timeout: Duration = .seconds(60), endpoint: AcquirerEndpoint?? = nil
    ) throws -> AuthorizationGateway {
        AuthorizationGateway(
            tokens: vault.tokens, audit: audit ?? vault.audit,
            acquirer: try endpoint ?? self.endpoint(timeout: timeout), logger: logger)
    }

    /// Tokenizes `card`; returns its token.
    func tokenize(_ card: TestCard) async throws -> Token {
        try await vault.tokens.tokenize(card.request()).metadata.token
    }
}

/// Runs `body` with a fresh vault, a simulator on a loopback port and a gateway to it.
func withGateway<R>(
    configuration: AcquirerConfiguration = .init(), _ body: (GatewayHarness) async throws -> R
) async throws -> R {
    try await withFreshVault("acquirer-tests") { fresh in
        let directory = fresh.root + "/acquirer"
        let simulator = try AcquirerSimulator.open(
            stateDirectory: directory, configuration: configuration, logger: fresh.logger)
        let server = try await AcquirerServer.start(simulator: simulator, logger: fresh.logger)
        let harness = GatewayHarness(
            vault: fresh.vault, simulator: simulator, server: server, simulatorDirectory: directory,
            logger: fresh.logger, logs: fresh.logs)
        do {
            let result = try await body(harness)
            await server.stop()
            return result
        } catch {
            await server.stop()
            throw error
        }
    }
}

/// Runs `body`, which must throw an ``AuthorizationError``; returns it, or `nil` (recording an
/// issue) if `body` returned.
func authorizationError<R>(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> R
) async -> AuthorizationError? {
    await thrownError(AuthorizationError.self, sourceLocation: sourceLocation, body)
}

/// A loopback port nothing listens on (bound, then released).
func closedPort() async throws -> Int {
    let (logger, _) = TestLog.capturing(level: .critical)
    return try await withTemporaryDirectory("acquirer-tests") { root in
        let simulator = try AcquirerSimulator.open(stateDirectory: root, logger: logger)
        let server = try await AcquirerServer.start(simulator: simulator, logger: logger)
        await server.stop()
        return server.port
    }
}
