import Audit
import CardTokens
import Detokenization
import Foundation
import InMemoryLogging
import Logging
import Synchronization
import Testing
import TokenVault
import VaultTestSupport

// Helpers for the Detokenization suites, copied in part from the TokenVault and VaultServer
// test targets (a test target cannot import another).

// MARK: - A vault under test

/// A vault in a temporary folder, a `Detokenizer` on it, and what both logged.
struct Harness: Sendable {
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

    /// Every audit record, oldest first.
    func auditRecords() async throws -> [AuditRecord] {
        try await vault.audit.records(limit: 1_000_000)
    }

    /// The records appended while `body` ran.
    func newAuditRecords<R>(
        during body: () async throws -> R
    ) async throws -> (result: R, records: [AuditRecord]) {
        let before = try await auditRecords().last?.sequence ?? 0
        let result = try await body()
        return (result, try await vault.audit.records(after: before, limit: 1_000_000))
    }

    /// Everything in the audit log as text: every field of every record, as stored.
    func renderedAudit() async throws -> String {
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
    var renderedLogs: String { logs.entries.map(TestLog.rendered).joined(separator: "\n") }
}

/// Runs `body` against a freshly initialised vault in a temporary folder.
func withHarness<R>(rateLimiter: RateLimiter? = nil, _ body: (Harness) async throws -> R) async throws -> R {
    let root = FileManager.default.temporaryDirectory
        .appendingPathComponent("detokenization-tests-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: root) }
    let paths = VaultPaths(dataDirectory: root + "/data", keysDirectory: root + "/Keys")
    let (logger, logs) = TestLog.capturing()
    _ = try await Vault.initialize(paths: paths, logger: logger)
    let vault = try await Vault.open(paths: paths, logger: logger)
    let detokenizer = Detokenizer(tokens: vault.tokens, audit: vault.audit, rateLimiter: rateLimiter, logger: logger)
    return try await body(Harness(vault: vault, detokenizer: detokenizer, logs: logs, logger: logger))
}

/// Runs `body`, which must throw a ``DetokenizationError``; returns it, or `nil` (recording an
/// issue) if `body` returned.
func refusal<R>(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> R
) async -> DetokenizationError? {
    do {
        _ = try await body()
        Issue.record("expected a DetokenizationError, got a result", sourceLocation: sourceLocation)
        return nil
    } catch let error as DetokenizationError {
        return error
    } catch {
        Issue.record("expected a DetokenizationError, got \(error)", sourceLocation: sourceLocation)
        return nil
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

/// Passes appends to `base` and keeps a copy of every event, noting whether the detokenizer
/// had already returned when the append ran.
final class SpyAuditLog: AuditLog {
    let base: any AuditLog
    private let state = Mutex<(events: [AuditEvent], returned: Bool, appendedAfterReturn: Bool)>(([], false, false))

    init(base: any AuditLog) {
        self.base = base
    }

    func append(_ events: [AuditEvent]) async throws -> [Int64] {
        let sequences = try await base.append(events)
        state.withLock { state in
            state.events += events
            if state.returned { state.appendedAfterReturn = true }
        }
        return sequences
    }

    /// Marks the moment the detokenizer returned.
    func markReturned() { state.withLock { $0.returned = true } }

    var events: [AuditEvent] { state.withLock { $0.events } }
    var appendedAfterReturn: Bool { state.withLock { $0.appendedAfterReturn } }
}

// MARK: - Logging

// MARK: - Cards

/// Card data for tests: public test numbers or generated Luhn-valid numbers.
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

    var testDescription: String { "card of \(pan.count) digits" }

    var bin: String { String(pan.prefix(6)) }
    var last4: String { String(pan.suffix(4)) }
    /// What a masked reveal must show: BIN, `*` for every hidden digit, last four.
    var masked: String {
        pan.count >= 15
            ? bin + String(repeating: "*", count: pan.count - 10) + last4
            : String(repeating: "*", count: pan.count - 4) + last4
    }

    func request(format: TokenFormat = .opaque) throws -> TokenizeRequest {
        TokenizeRequest(card: try CardInput(pan: pan, expMonth: expMonth, expYear: expYear, cvv: cvv), format: format)
    }

    /// Published test numbers of the card networks.
    static let visa = TestCard(pan: "4111111111111111", expMonth: 1, expYear: 2032)
    static let visa2 = TestCard(pan: "4242424242424242", expMonth: 2, expYear: 2033)
    static let mastercard = TestCard(pan: "5555555555554444", expMonth: 3, expYear: 2034)
    static let amex = TestCard(pan: "378282246310005", expMonth: 4, expYear: 2035)
    static let discover = TestCard(pan: "6011111111111117", expMonth: 5, expYear: 2036)

    static let published: [TestCard] = [.visa, .visa2, .mastercard, .amex, .discover]
}

enum PANGenerator {
    /// IIN prefixes (ranges well inside one network each).
    static let prefixes = ["4", "51", "55", "2221", "34", "37", "6011", "65", "3530", "36", "621", "50"]

    /// A Luhn-valid PAN of `length` digits under a random known prefix.
    static func pan<G: RandomNumberGenerator>(length: Int, using generator: inout G) -> String {
        let prefix = prefixes.randomElement(using: &generator)!
        var bytes = Array((prefix + TestLuhn.digits(length - 1 - prefix.count, using: &generator)).utf8)
        bytes.append(TestLuhn.checkDigit(for: bytes))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A card with a generated PAN of `length` digits and a future expiry.
    static func card<G: RandomNumberGenerator>(length: Int, using generator: inout G) -> TestCard {
        TestCard(
            pan: pan(length: length, using: &generator), expMonth: Int.random(in: 1...12, using: &generator),
            expYear: Int.random(in: 2031...2045, using: &generator))
    }
}

/// A well-formed opaque token that no vault has issued.
let unknownToken = "tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

extension DetokenizeResult {
    var token: String? {
        switch self {
        case .card(let token, _, _, _, _): token
        case .error(let token, _, _): token
        }
    }

    var errorCode: String? {
        if case .error(_, let code, _) = self { code } else { nil }
    }

    var pan: String? {
        if case .card(_, let pan, _, _, _) = self { pan } else { nil }
    }

    var maskedPan: String? {
        if case .card(_, _, let maskedPan, _, _) = self { maskedPan } else { nil }
    }

    var expiry: (month: Int, year: Int)? {
        if case .card(_, _, _, let month, let year) = self { (month, year) } else { nil }
    }
}
