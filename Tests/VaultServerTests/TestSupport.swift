import CDETestSupport
import CardTokens
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import NIOCore
import Testing
import TokenVault
import VaultServer
import VaultTestSupport
import Wallet

// Helpers shared by the VaultServer suites: a vault in a temporary folder behind the public
// router, a client that speaks JSON, test cards, and log capture.

// MARK: - Server under test

/// How a request authenticates.
enum Auth: Sendable {
    /// The server's all-scope key (`tokenize`, `tokens:read`, `tokens:delete`).
    case standard
    /// No `Authorization` header.
    case none
    /// `Authorization: Bearer <secret>`.
    case bearer(String)
    /// `Authorization: <value>` as given.
    case header(String)

    /// Sets (or leaves out) the `Authorization` header; `.standard` presents `standardKey`.
    func apply(to headers: inout HTTPFields, standardKey: String) {
        switch self {
        case .standard: headers[.authorization] = "Bearer \(standardKey)"
        case .none: break
        case .bearer(let secret): headers[.authorization] = "Bearer \(secret)"
        case .header(let value): headers[.authorization] = value
        }
    }
}

/// Which Hummingbird test framework drives the application.
enum Transport: String, Sendable, CaseIterable, CustomTestStringConvertible {
    /// Requests go straight to the router.
    case router
    /// A live server on a loopback port, with Hummingbird's HTTP/1 test client.
    case live

    var testDescription: String { rawValue }
}

/// A response, reduced to what the tests look at.
struct Reply: Sendable, CustomStringConvertible {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    var description: String { "\(status.code) \(text.prefix(300))" }

    /// The body decoded as `T`.
    func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONCoding.decoder.decode(T.self, from: Data(body))
    }

    /// The error envelope's code, or `nil` when the body is not an error envelope.
    var errorCode: String? { (try? decode(ErrorReply.self))?.error.code }

    /// The error envelope's message, or `nil`.
    var errorMessage: String? { (try? decode(ErrorReply.self))?.error.message }

    /// Whether the body holds `needle` anywhere (as UTF-8 bytes).
    func contains(_ needle: String) -> Bool { Bytes.contains(body, needle) }
}

/// A vault in a temporary folder, served by ``VaultApplication/publicRouter(vault:)``.
struct TestServer: VaultHarness {
    let vault: Vault
    /// Everything the vault and the application logged, at `.trace` and above.
    let logs: InMemoryLogHandler
    let client: any TestClientProtocol
    /// A key with the scopes `tokenize`, `tokens:read` and `tokens:delete`.
    let key: String
    /// The wallet side, when the server was started with one (see ``WalletSetup``).
    var walletSide: WalletSide? = nil
    var wallets: WalletService? { walletSide?.wallets }
    /// A key with the scopes `wallet` and `tokenize`, when the server has a wallet side.
    var walletKey: String? = nil

    /// Sends a request and collects the response.
    func send(
        _ method: HTTPRequest.Method, _ uri: String, auth: Auth = .standard, body: ByteBuffer? = nil,
        headers extraHeaders: HTTPFields = [:]
    ) async throws -> Reply {
        var headers = extraHeaders
        auth.apply(to: &headers, standardKey: key)
        if body != nil {
            headers[.contentType] = "application/json"
        }
        return try await client.execute(uri: uri, method: method, headers: headers, body: body) { response in
            Reply(status: response.status, headers: response.headers, body: Array(response.body.readableBytesView))
        }
    }

    /// `POST uri` with a JSON body given as text.
    func post(_ uri: String, text: String, auth: Auth = .standard) async throws -> Reply {
        try await send(.post, uri, auth: auth, body: ByteBuffer(string: text))
    }

    /// `POST uri` with a JSON body built from a JSON-compatible value.
    func post(_ uri: String, json: Any, auth: Auth = .standard) async throws -> Reply {
        try await send(.post, uri, auth: auth, body: ByteBuffer(bytes: JSONCoding.data(json)))
    }

    /// `POST /v1/tokens` for `card`.
    func tokenize(
        _ card: TestCard, format: String? = nil, dedupe: Bool? = nil, auth: Auth = .standard
    )
        async throws -> Reply
    {
        try await post("/v1/tokens", json: card.json(format: format, dedupe: dedupe), auth: auth)
    }

    /// `POST /v1/tokens` for `card`, which must succeed; returns the token's metadata.
    func tokenized(_ card: TestCard, format: String? = nil, dedupe: Bool? = nil) async throws -> TokenReply {
        let reply = try await tokenize(card, format: format, dedupe: dedupe)
        try #require(reply.status == .created || reply.status == .ok, "\(reply)")
        return try reply.decode(TokenReply.self)
    }

    /// A new key with exactly `scopes`.
    func key(scopes: [Scope], name: String = "scoped") async throws -> (credential: Credential, secret: String) {
        try await vault.credentials.create(name: name, scopes: scopes, purposes: [])
    }
}

/// The wallet side of a test server: a ``WalletService`` over `wallet.db` in the vault's data
/// folder, with its routes on the public router.
struct WalletSetup: Sendable {
    /// Charges cards on file; `nil` refuses top-ups with `acquirer_not_configured`.
    var authorizer: (any CardAuthorizing)?
    /// Issues virtual cards; `nil` refuses them with `issuing_not_configured`.
    var issuer: (any CardIssuer)?

    init(authorizer: (any CardAuthorizing)? = nil, issuer: (any CardIssuer)? = nil) {
        self.authorizer = authorizer
        self.issuer = issuer
    }
}

/// Runs `body` against a freshly initialised vault, served by the public router.
/// - Parameters:
///   - transport: `.router` (default) sends requests to the router directly; `.live` runs a
///     server on a loopback port.
///   - cvvTimeToLive: how long the vault holds a CVV.
///   - wallets: with a value, the public router also serves the wallet routes, and the
///     server has ``TestServer/wallets`` and a ``TestServer/walletKey``.
///   - tokenizeRateLimit: cards per second per key (`nil`, the default here: no limit).
func withServer<R: Sendable>(
    transport: Transport = .router, cvvTimeToLive: TimeInterval = 3600, wallets walletSetup: WalletSetup? = nil,
    tokenizeRateLimit: Double? = nil, _ body: @Sendable (TestServer) async throws -> R
) async throws -> R {
    try await withFreshVault("vault-server-tests", cvvTimeToLive: cvvTimeToLive) { fresh in
        let (vault, logger, logs) = (fresh.vault, fresh.logger, fresh.logs)
        let (_, secret) = try await vault.credentials.create(
            name: "all", scopes: [.tokenize, .tokensRead, .tokensDelete], purposes: [])
        var wallets: WalletSide?
        var walletKey: String?
        if let walletSetup {
            wallets = try VaultApplication.walletSide(
                vault: vault, authorizer: walletSetup.authorizer, issuer: walletSetup.issuer)
            walletKey = try await vault.credentials.create(name: "wallet", scopes: [.wallet, .tokenize], purposes: []).1
        }
        let router = VaultApplication.publicRouter(
            vault: vault, wallets: wallets, tokenizeRateLimit: tokenizeRateLimit)
        let server: @Sendable (any TestClientProtocol) -> TestServer = { [wallets, walletKey] client in
            TestServer(
                vault: vault, logs: logs, client: client, key: secret, walletSide: wallets, walletKey: walletKey)
        }
        switch transport {
        case .router:
            let app = Application(router: router, logger: logger)
            return try await app.test(.router) { client in try await body(server(client)) }
        case .live:
            let app = Application(
                router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
            return try await app.test(.live) { client in try await body(server(client)) }
        }
    }
}

// MARK: - Response bodies

/// A token's metadata as the API returns it.
struct TokenReply: Decodable, Sendable, Hashable {
    var token: String
    var format: String
    var bin: String
    var last4: String
    var brand: String
    var expMonth: Int
    var expYear: Int
    var fingerprint: String
    var createdAt: Date
    var cvvHeld: Bool
    var cvvExpiresAt: Date?
}

/// `{"error": {"code", "message"}}`.
struct ErrorReply: Decodable, Sendable, Hashable {
    struct Body: Decodable, Sendable, Hashable {
        var code: String
        var message: String
    }
    var error: Body
}

/// One entry of a batch response: a token or an error.
enum BatchReplyItem: Decodable, Sendable, Hashable {
    case token(TokenReply)
    case error(ErrorReply.Body)

    init(from decoder: any Decoder) throws {
        if let error = try? ErrorReply(from: decoder) {
            self = .error(error.error)
        } else {
            self = .token(try TokenReply(from: decoder))
        }
    }

    var token: TokenReply? {
        if case .token(let token) = self { token } else { nil }
    }

    var errorCode: String? {
        if case .error(let error) = self { error.code } else { nil }
    }
}

struct BatchReply: Decodable, Sendable {
    var results: [BatchReplyItem]
}

// MARK: - Cards

/// The current month (UTC), and the one before it, for expiry tests.
enum Months {
    static var current: (year: Int, month: Int) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month], from: Date())
        return (parts.year!, parts.month!)
    }

    static var previous: (year: Int, month: Int) {
        let (year, month) = current
        return month == 1 ? (year - 1, 12) : (year, month - 1)
    }
}

// MARK: - Bytes

/// Finds PANs in text fast enough to check thousands of them against megabytes of output.
enum PANScanner {
    /// Every run of at least `minimumDigits` ASCII digits in `text`, where single spaces and
    /// dashes between digits are skipped (so `4111 1111-1111 1111` is found as a PAN too).
    static func digitRuns(in text: String, minimumDigits: Int = 12) -> Set<String> {
        var runs = Set<String>()
        var current = [UInt8]()
        var pendingSeparator = false
        func flush() {
            if current.count >= minimumDigits { runs.insert(String(decoding: current, as: UTF8.self)) }
            current.removeAll(keepingCapacity: true)
            pendingSeparator = false
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                current.append(byte)
                pendingSeparator = false
            case UInt8(ascii: " "), UInt8(ascii: "-"):
                if current.isEmpty || pendingSeparator { flush() } else { pendingSeparator = true }
            default:
                flush()
            }
        }
        flush()
        return runs
    }

    /// The PANs (digits only) of `pans` that occur in `text`, bare or with spaces or dashes.
    static func leaked(_ pans: Set<String>, in text: String) -> [String] {
        let runs = digitRuns(in: text)
        return pans.filter { pan in runs.contains { $0.contains(pan) } }.sorted()
    }
}

// MARK: - Routes

/// A route the public router serves, as `METHOD /path/{parameter}`.
struct RouteKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    var method: String
    var path: String

    var description: String { "\(method) \(path)" }

    static func < (lhs: RouteKey, rhs: RouteKey) -> Bool { lhs.description < rhs.description }
}

/// A well-formed opaque token that no vault has issued.
let unknownToken = "tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
