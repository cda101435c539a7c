import Audit
import CDETestSupport
import CardTokens
import Detokenization
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

// Helpers for the detokenize listener's suites: a vault behind both routers, keys for each
// role, and the response bodies of `POST /v1/detokenize` and `GET /v1/audit`.

/// Which listener a request goes to.
enum Listener: String, Sendable, CustomTestStringConvertible {
    case `public`
    case detokenize

    var testDescription: String { rawValue }
}

/// A vault served by ``VaultApplication/publicRouter(vault:)`` and
/// ``VaultApplication/detokenizeRouter(vault:rateLimit:logger:)``.
struct DetokenizeServer: VaultHarness {
    let vault: Vault
    /// Everything the vault and the application logged, at `.trace` and above.
    let logs: InMemoryLogHandler
    let publicClient: any TestClientProtocol
    let detokenizeClient: any TestClientProtocol
    /// Scopes `tokenize`, `tokens:read`, `tokens:delete`.
    let tokenizeKey: String
    /// Scope `detokenize`, purposes `settlement` and `cardholder_reveal`.
    let detokenizeKey: String
    let detokenizeCredential: Credential
    /// Scope `audit:read`.
    let auditKey: String
    let auditCredential: Credential

    static let purposes = ["cardholder_reveal", "settlement"]

    /// Sends a request to `listener` (the detokenize listener unless told).
    func send(
        _ method: HTTPRequest.Method, _ uri: String, to listener: Listener = .detokenize, auth: Auth,
        body: ByteBuffer? = nil
    ) async throws -> Reply {
        var headers: HTTPFields = [:]
        auth.apply(to: &headers, standardKey: detokenizeKey)
        if body != nil {
            headers[.contentType] = "application/json"
        }
        let client = listener == .public ? publicClient : detokenizeClient
        return try await client.execute(uri: uri, method: method, headers: headers, body: body) { response in
            Reply(status: response.status, headers: response.headers, body: Array(response.body.readableBytesView))
        }
    }

    /// `POST /v1/detokenize` with a body built from a JSON-compatible value.
    func detokenize(json: Any, auth: Auth = .standard, to listener: Listener = .detokenize) async throws -> Reply {
        try await send(
            .post, "/v1/detokenize", to: listener, auth: auth, body: ByteBuffer(bytes: JSONCoding.data(json)))
    }

    /// `POST /v1/detokenize` with the usual fields.
    func detokenize(
        _ tokens: [String], reveal: String? = "pan", purpose: String = "settlement", reference: String = "batch-1",
        auth: Auth = .standard
    ) async throws -> Reply {
        var body: [String: Any] = ["tokens": tokens, "purpose": purpose, "reference": reference]
        if let reveal { body["reveal"] = reveal }
        return try await detokenize(json: body, auth: auth)
    }

    /// `GET /v1/audit` with the audit key unless told.
    func auditPage(_ query: String = "", auth: Auth? = nil) async throws -> Reply {
        try await send(.get, "/v1/audit" + query, auth: auth ?? .bearer(auditKey))
    }

    /// Tokenizes `cards` straight into the vault; returns their tokens in order.
    func tokenize(_ cards: [TestCard], format: TokenFormat = .opaque) async throws -> [String] {
        var tokens = [String]()
        for card in cards {
            let input = try CardInput(pan: card.pan, expMonth: card.expMonth, expYear: card.expYear, cvv: card.cvv)
            let result = try await vault.tokens.tokenize(TokenizeRequest(card: input, format: format))
            tokens.append(result.metadata.token.rawValue)
        }
        return tokens
    }

    /// A new key with exactly `scopes` and `purposes`.
    func key(
        scopes: [Scope], purposes: [String] = [], name: String = "scoped"
    ) async throws -> (credential: Credential, secret: String) {
        try await vault.credentials.create(name: name, scopes: scopes, purposes: purposes)
    }
}

/// Runs `body` against a fresh vault behind both routers (Hummingbird's router test framework).
/// - Parameters:
///   - rateLimit: detokenize requests per second per key; `nil` for none.
///   - detokenizer: builds the detokenize router's ``Detokenizer`` (e.g. on a failing audit
///     log) instead of ``VaultApplication/detokenizeRouter(vault:rateLimit:logger:)``'s.
func withDetokenizeServer<R: Sendable>(
    rateLimit: Double? = nil, detokenizer: (@Sendable (Vault, Logger) -> Detokenizer)? = nil,
    _ body: @Sendable (DetokenizeServer) async throws -> R
) async throws -> R {
    try await withFreshVault("vault-detokenize-tests") { fresh in
        let (vault, logger, logs) = (fresh.vault, fresh.logger, fresh.logs)
        let (_, tokenizeKey) = try await vault.credentials.create(
            name: "tokenizer", scopes: [.tokenize, .tokensRead, .tokensDelete], purposes: [])
        let (detokenizeCredential, detokenizeKey) = try await vault.credentials.create(
            name: "detokenizer", scopes: [.detokenize], purposes: DetokenizeServer.purposes.map { $0 + ":pan" })
        let (auditCredential, auditKey) = try await vault.credentials.create(
            name: "auditor", scopes: [.auditRead], purposes: [])
        let detokenizeRouter =
            if let detokenizer {
                VaultApplication.detokenizeRouter(vault: vault, detokenizer: detokenizer(vault, logger))
            } else {
                VaultApplication.detokenizeRouter(vault: vault, rateLimit: rateLimit, logger: logger)
            }
        let publicApp = Application(router: VaultApplication.publicRouter(vault: vault), logger: logger)
        let detokenizeApp = Application(router: detokenizeRouter, logger: logger)
        return try await publicApp.test(.router) { publicClient in
            try await detokenizeApp.test(.router) { detokenizeClient in
                try await body(
                    DetokenizeServer(
                        vault: vault, logs: logs, publicClient: publicClient, detokenizeClient: detokenizeClient,
                        tokenizeKey: tokenizeKey, detokenizeKey: detokenizeKey,
                        detokenizeCredential: detokenizeCredential, auditKey: auditKey,
                        auditCredential: auditCredential))
            }
        }
    }
}

// MARK: - Response bodies

/// `{"results": [...]}`, each entry kept as a JSON object so that `null` and absent keys can
/// be told apart.
struct DetokenizeReply {
    var results: [[String: Any]]

    init(_ reply: Reply) throws {
        let object = try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any]
        results = try #require(object?["results"] as? [[String: Any]], "\(reply)")
    }

    /// Each result's `token`: a string, `nil` for `null`; a missing key fails the test.
    func tokens(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String?] {
        try results.map { result in
            let value = try #require(result["token"], "no token key", sourceLocation: sourceLocation)
            return value is NSNull ? nil : value as? String
        }
    }

    var pans: [String?] { results.map { $0["pan"] as? String } }
    var maskedPans: [String?] { results.map { $0["masked_pan"] as? String } }
    var expiries: [[Int]?] {
        results.map { result in
            (result["exp_month"] as? Int).flatMap { month in (result["exp_year"] as? Int).map { [month, $0] } }
        }
    }
    var errorCodes: [String?] { results.map { ($0["error"] as? [String: Any])?["code"] as? String } }
}
