import Audit
import CDETestSupport
import CardTokens
import Detokenization
import Foundation
import InMemoryLogging
import Logging
import Testing
import TokenVault
import VaultTestSupport

// Helpers for the Detokenization suites (cards come from VaultTestSupport; a fresh vault, its
// audit and log readers and the audit logs that misbehave from CDETestSupport).

// MARK: - A vault under test

/// A vault in a temporary folder, a `Detokenizer` on it, and what both logged.
struct Harness: VaultHarness {
    let vault: Vault
    let detokenizer: Detokenizer
    /// Everything the vault and the detokenizer logged, at `.trace` and above.
    let logs: InMemoryLogHandler
    let logger: Logger

    /// The peer address the tests use.
    static let origin = "192.0.2.7"

    /// A detokenizer on the same vault with another audit log or rate limiter.
    func detokenizer(audit: any AuditLog, rateLimiter: RateLimiter? = nil) -> Detokenizer {
        Detokenizer(tokens: vault.tokens, audit: audit, rateLimiter: rateLimiter, logger: logger)
    }

    /// A key with `scopes` and `purposes`.
    func credential(
        _ scopes: [Scope] = [.detokenize], purposes: [String] = ["settlement:pan", "cardholder_reveal:pan"],
        name: String = "detokenizer"
    ) async throws -> Credential {
        try await vault.credentials.create(name: name, scopes: scopes, purposes: purposes).credential
    }

    /// A caller holding `credential`, from ``origin``.
    func caller(_ credential: Credential?, presentedID: String? = nil) -> Caller {
        Caller(credential: credential, presentedID: presentedID, origin: Self.origin)
    }

    /// Tokenizes `cards` in one batch; returns their tokens in order.
    func tokenize(_ cards: [TestCard], format: TokenFormat = .opaque) async throws -> [String] {
        try await tokenize(cards.map { ($0, format) })
    }

    /// Tokenizes each card in its format, in one batch; returns the tokens in order.
    func tokenize(_ cards: [(card: TestCard, format: TokenFormat)]) async throws -> [String] {
        let requests = try cards.map { try $0.card.request(format: $0.format) }
        return try await vault.tokens.tokenize(batch: requests).map { try $0.get().metadata.token.rawValue }
    }

    /// `authorize` then `detokenize`, as the listener does.
    func detokenize(
        _ tokens: [String], reveal: RevealLevel = .pan, purpose: String = "settlement", reference: String = "batch-1",
        as credential: Credential, using detokenizer: Detokenizer? = nil
    ) async throws(DetokenizationError) -> [DetokenizeResult] {
        let detokenizer = detokenizer ?? self.detokenizer
        let caller = caller(credential)
        let authorized = try await detokenizer.authorize(caller)
        return try await detokenizer.detokenize(
            DetokenizeRequest(tokens: tokens, purpose: purpose, reference: reference, reveal: reveal),
            credential: authorized, caller: caller)
    }
}

/// Runs `body` against a freshly initialised vault in a temporary folder.
func withHarness<R>(rateLimiter: RateLimiter? = nil, _ body: (Harness) async throws -> R) async throws -> R {
    try await withFreshVault("detokenization-tests") { fresh in
        let detokenizer = Detokenizer(
            tokens: fresh.vault.tokens, audit: fresh.vault.audit, rateLimiter: rateLimiter, logger: fresh.logger)
        return try await body(
            Harness(vault: fresh.vault, detokenizer: detokenizer, logs: fresh.logs, logger: fresh.logger))
    }
}

/// Runs `body`, which must throw a ``DetokenizationError``; returns it, or `nil` (recording an
/// issue) if `body` returned.
func refusal<R>(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> R
) async -> DetokenizationError? {
    await thrownError(DetokenizationError.self, sourceLocation: sourceLocation, body)
}

/// A well-formed opaque token that no vault has issued.
let unknownToken = "tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

extension DetokenizeResult {
    var token: String? {
        switch self {
        case .card(let token, _, _, _, _, _): token
        case .error(let token, _, _): token
        }
    }

    var errorCode: String? {
        if case .error(_, let code, _) = self { code } else { nil }
    }

    var pan: String? {
        if case .card(_, let pan, _, _, _, _) = self { pan } else { nil }
    }

    var maskedPan: String? {
        if case .card(_, _, let maskedPan, _, _, _) = self { maskedPan } else { nil }
    }

    var cvv: String? {
        if case .card(_, _, _, _, _, let cvv) = self { cvv } else { nil }
    }

    var expiry: (month: Int, year: Int)? {
        if case .card(_, _, _, let month, let year, _) = self { (month, year) } else { nil }
    }
}
