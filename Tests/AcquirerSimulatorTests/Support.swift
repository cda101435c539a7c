import AcquirerSimulator
import Audit
import CardTokens
import Detokenization
import Foundation
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import NIOCore
import Synchronization
import Testing
import TokenVault
import VaultCrypto
import VaultTestSupport

// Helpers for the acquirer suites (a test target cannot import another's helpers).

// MARK: - Folders

/// A fresh temporary folder, removed when `body` returns.
func withTemporaryDirectory<R>(_ body: (String) async throws -> R) async throws -> R {
    let root = FileManager.default.temporaryDirectory
        .appendingPathComponent("acquirer-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    return try await body(root)
}

/// The POSIX permission bits of `path`.
func mode(of path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

/// Every byte of the files in `directory` whose names start with `prefix` (a database and its
/// -wal and -shm files).
func bytes(ofFilesIn directory: String, prefix: String) throws -> [UInt8] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasPrefix(prefix) }.flatMap {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/" + $0)))
    }
}

/// Whether `haystack` holds `needle`'s bytes.
func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
    let pattern = Array(needle.utf8)
    guard !pattern.isEmpty, haystack.count >= pattern.count else { return false }
    for start in 0...(haystack.count - pattern.count) where haystack[start] == pattern[0] {
        if haystack[start..<start + pattern.count].elementsEqual(pattern) { return true }
    }
    return false
}

// MARK: - Cards

/// Card data for tests: published test numbers only.
struct TestCard: Sendable, Hashable, CustomTestStringConvertible {
    var pan: String
    var expMonth: Int
    var expYear: Int
    var cvv: String?

    init(pan: String, expMonth: Int = 12, expYear: Int = 2031, cvv: String? = nil) {
        self.pan = pan
        self.expMonth = expMonth
        self.expYear = expYear
        self.cvv = cvv
    }

    var testDescription: String { "card ending \(pan.suffix(4))\(cvv == nil ? "" : " with CVV")" }

    func withCVV(_ cvv: String?) -> TestCard {
        var card = self
        card.cvv = cvv
        return card
    }

    /// The card block as the gateway writes it.
    var blockJSON: String {
        var json = #"{"pan":"\#(pan)","exp_month":\#(expMonth),"exp_year":\#(expYear)"#
        if let cvv { json += #","cvv":"\#(cvv)""# }
        return json + "}"
    }

    func request(format: TokenFormat = .opaque) throws -> TokenizeRequest {
        TokenizeRequest(card: try CardInput(pan: pan, expMonth: expMonth, expYear: expYear, cvv: cvv), format: format)
    }

    static let visa = TestCard(pan: "4111111111111111")
    static let visa2 = TestCard(pan: "4242424242424242")
    static let mastercard = TestCard(pan: "5555555555554444")
    static let amex = TestCard(pan: "378282246310005")
    /// Always declined `do_not_honor`.
    static let declined = TestCard(pan: "4000000000000002")
    /// Always declined `insufficient_funds`.
    static let insufficientFunds = TestCard(pan: "4000000000009995")

    static let all: [TestCard] = [.visa, .visa2, .mastercard, .amex, .declined, .insufficientFunds]
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
    try await withTemporaryDirectory { root in
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
struct GatewayHarness: Sendable {
    let vault: Vault
    let simulator: AcquirerSimulator
    let server: RunningAcquirer
    let simulatorDirectory: String
    let logger: Logger
    let logs: InMemoryLogHandler

    /// The simulator's endpoint, its public key read from `acquirer.pub` as `vault serve` would.
    func endpoint(timeout: Duration = .seconds(5)) throws -> AcquirerEndpoint {
        try AcquirerEndpoint(
            baseURL: server.baseURL, publicKeyFile: simulatorDirectory + "/" + AcquirerKeyPair.publicKeyFileName,
            timeout: timeout)
    }

    /// A gateway on this vault (its audit log unless told otherwise).
    func gateway(
        audit: (any AuditLog)? = nil, timeout: Duration = .seconds(5), endpoint: AcquirerEndpoint?? = nil
    ) throws -> AuthorizationGateway {
        AuthorizationGateway(
            tokens: vault.tokens, audit: audit ?? vault.audit,
            acquirer: try endpoint ?? self.endpoint(timeout: timeout), logger: logger)
    }

    /// Tokenizes `card`; returns its token.
    func tokenize(_ card: TestCard) async throws -> Token {
        try await vault.tokens.tokenize(card.request()).metadata.token
    }

    /// Every audit record, oldest first.
    func auditRecords() async throws -> [AuditRecord] {
        try await vault.audit.records(limit: 1_000_000)
    }

    /// Everything logged, one line per entry.
    var renderedLogs: String { logs.entries.map(TestLog.rendered).joined(separator: "\n") }
}

/// Runs `body` with a fresh vault, a simulator on a loopback port and a gateway to it.
func withGateway<R>(
    configuration: AcquirerConfiguration = .init(), _ body: (GatewayHarness) async throws -> R
) async throws -> R {
    try await withTemporaryDirectory { root in
        let (logger, logs) = TestLog.capturing()
        let paths = VaultPaths(dataDirectory: root + "/data", keysDirectory: root + "/Keys")
        _ = try await Vault.initialize(paths: paths, logger: logger)
        let vault = try await Vault.open(paths: paths, logger: logger)
        let directory = root + "/acquirer"
        let simulator = try AcquirerSimulator.open(
            stateDirectory: directory, configuration: configuration, logger: logger)
        let server = try await AcquirerServer.start(simulator: simulator, logger: logger)
        let harness = GatewayHarness(
            vault: vault, simulator: simulator, server: server, simulatorDirectory: directory, logger: logger,
            logs: logs)
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
    do {
        let result = try await body()
        Issue.record("expected an AuthorizationError, got \(result)", sourceLocation: sourceLocation)
        return nil
    } catch let error as AuthorizationError {
        return error
    } catch {
        Issue.record("expected an AuthorizationError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A loopback port nothing listens on (bound, then released).
func closedPort() async throws -> Int {
    let (logger, _) = TestLog.capturing(level: .critical)
    return try await withTemporaryDirectory { root in
        let simulator = try AcquirerSimulator.open(stateDirectory: root, logger: logger)
        let server = try await AcquirerServer.start(simulator: simulator, logger: logger)
        await server.stop()
        return server.port
    }
}

// MARK: - Audit logs that misbehave

/// An audit log that cannot be written (a full disk, a lost database).
final class FailingAuditLog: AuditLog {
    struct WriteFailed: Error {}

    /// How many appends were attempted.
    let attempts = Atomic<Int>(0)

    func append(_ events: [AuditEvent]) async throws -> [Int64] {
        attempts.add(1, ordering: .relaxed)
        throw WriteFailed()
    }
}

/// Passes appends to `base` and notes, for each, how many authorizations the simulator had
/// recorded at that moment.
final class SpyAuditLog: AuditLog {
    let base: any AuditLog
    let simulator: AcquirerSimulator
    private let state = Mutex<[(event: AuditEvent, recordsBefore: Int)]>([])

    init(base: any AuditLog, simulator: AcquirerSimulator) {
        self.base = base
        self.simulator = simulator
    }

    func append(_ events: [AuditEvent]) async throws -> [Int64] {
        let recorded = try await simulator.records().count
        let sequences = try await base.append(events)
        state.withLock { $0 += events.map { ($0, recorded) } }
        return sequences
    }

    var appends: [(event: AuditEvent, recordsBefore: Int)] { state.withLock { $0 } }
}
