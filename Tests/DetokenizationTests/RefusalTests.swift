import Audit
import CDETestSupport
import CardTokens
import Detokenization
import Foundation
import GRDB
import Testing
import TokenVault
import VaultTestSupport

/// Every refusal throws the right error and leaves a `denied` record; nothing a client sent by
/// mistake (a PAN as a token, in a purpose or a reference) reaches the audit log or the logs.
@Suite("Detokenize refusals")
struct RefusalTests {
    /// Checks that `records` is exactly one `denied` detokenize record from ``Harness/origin``
    /// with these fields.
    static func expectDenied(
        _ records: [AuditRecord], actor: String, code: String, purpose: String? = nil, reference: String? = nil,
        objects: [String] = [], sourceLocation: SourceLocation = #_sourceLocation
    ) {
        expectOneDeniedDetokenize(
            records, actor: actor, code: code, purpose: purpose, reference: reference, origin: Harness.origin,
            objects: objects, sourceLocation: sourceLocation)
    }

    @Test("No credential: unauthenticated, audited as anonymous")
    func noCredential() async throws {
        try await withHarness { harness in
            let (error, records) = try await harness.newAuditRecords {
                await refusal { try await harness.detokenizer.authorize(harness.caller(nil)) }
            }
            #expect(error?.category == .unauthenticated)
            #expect(error?.code == "unauthenticated")
            Self.expectDenied(records, actor: "anonymous", code: "unauthenticated")
        }
    }

    @Test("An invalid key: unauthenticated, audited under the id it presented")
    func invalidKey() async throws {
        try await withHarness { harness in
            let (error, records) = try await harness.newAuditRecords {
                await refusal {
                    try await harness.detokenizer.authorize(harness.caller(nil, presentedID: "0123456789abcdef"))
                }
            }
            #expect(error?.category == .unauthenticated)
            Self.expectDenied(records, actor: "unknown:0123456789abcdef", code: "unauthenticated")
        }
    }

    @Test(
        "A key without scope detokenize: forbidden, audited under its id",
        arguments: [[Scope.tokenize], [.tokenize, .tokensRead, .tokensDelete], [.auditRead], [.wallet]])
    func wrongScope(scopes: [Scope]) async throws {
        try await withHarness { harness in
            let credential = try await harness.credential(scopes, purposes: [], name: "not-a-detokenizer")
            let (error, records) = try await harness.newAuditRecords {
                await refusal { try await harness.detokenizer.authorize(harness.caller(credential)) }
            }
            #expect(error?.category == .forbidden)
            #expect(error?.code == "forbidden")
            Self.expectDenied(records, actor: credential.id, code: "forbidden")
        }
    }

    @Test("A revoked detokenize key: forbidden")
    func revoked() async throws {
        try await withHarness { harness in
            var credential = try await harness.credential()
            credential.revokedAt = Date()
            let (error, records) = try await harness.newAuditRecords {
                await refusal { try await harness.detokenizer.authorize(harness.caller(credential)) }
            }
            #expect(error?.category == .forbidden)
            Self.expectDenied(records, actor: credential.id, code: "forbidden")
        }
    }

    @Test("A purpose the key does not list: purpose_not_allowed, audited with purpose, reference and tokens")
    func purposeNotAllowed() async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize([.visa, .mastercard])
            let settlement = try await harness.credential(purposes: ["settlement:pan"])
            let none = try await harness.credential(purposes: [], name: "no-purposes")
            for (credential, purpose) in [
                (settlement, "chargeback"), (settlement, "cardholder_reveal"), (none, "settlement"),
            ] {
                let (error, records) = try await harness.newAuditRecords {
                    await refusal {
                        try await harness.detokenize(
                            [tokens[0], "4111111111111111", tokens[1]], purpose: purpose, reference: "case-7",
                            as: credential)
                    }
                }
                #expect(error?.category == .forbidden)
                #expect(error?.code == "purpose_not_allowed")
                Self.expectDenied(
                    records, actor: credential.id, code: "purpose_not_allowed", purpose: purpose, reference: "case-7",
                    objects: tokens)
            }
            #expect(try await !harness.renderedAudit().contains("4111111111111111"))
            // The allowed purpose still works for the same key.
            let results = try await harness.detokenize(tokens, purpose: "settlement", as: settlement)
            #expect(results.map(\.pan) == [TestCard.visa.pan, TestCard.mastercard.pan])
        }
    }

    @Test("Over the rate limit: rate_limited with a retry time, audited; other keys are unaffected")
    func rateLimited() async throws {
        try await withHarness(rateLimiter: RateLimiter(rate: 0.01)) { harness in
            let tokens = try await harness.tokenize([.visa])
            let credential = try await harness.credential()
            let other = try await harness.credential(name: "other")
            _ = try await harness.detokenize(tokens, as: credential)
            let (error, records) = try await harness.newAuditRecords {
                await refusal { try await harness.detokenize(tokens, as: credential) }
            }
            guard error?.category == .rateLimited, let retryAfter = error?.retryAfterSeconds else {
                Issue.record("expected rateLimited, got \(String(describing: error))")
                return
            }
            #expect(retryAfter >= 1)
            #expect(error?.code == "rate_limited")
            // Counted in tokens, so checked once the request is read: the refusal names them.
            Self.expectDenied(
                records, actor: credential.id, code: "rate_limited", purpose: "settlement", reference: "batch-1",
                objects: tokens)
            let results = try await harness.detokenize(tokens, as: other)
            #expect(results.map(\.pan) == [TestCard.visa.pan])
        }
    }

    /// A request that fails validation, and the code it must get.
    struct Invalid: Sendable, CustomTestStringConvertible {
        var name: String
        var count: Int = 1
        var purpose = "settlement"
        var reference = "batch-1"
        var code: String
        /// Whether the purpose is valid and so may be audited.
        var purposeAudited: Bool { code != "invalid_purpose" }

        var testDescription: String { name }

        static let all: [Invalid] = [
            Invalid(name: "no tokens", count: 0, code: "invalid_batch_size"),
            Invalid(name: "1,001 tokens", count: 1001, code: "invalid_batch_size"),
            Invalid(name: "empty purpose", purpose: "", code: "invalid_purpose"),
            Invalid(name: "upper-case purpose", purpose: "Settlement", code: "invalid_purpose"),
            Invalid(name: "purpose with a space", purpose: "settle ment", code: "invalid_purpose"),
            Invalid(
                name: "purpose of 65 characters", purpose: String(repeating: "a", count: 65), code: "invalid_purpose"),
            Invalid(name: "purpose holding a PAN", purpose: "pan4111111111111111", code: "invalid_purpose"),
            Invalid(
                name: "purpose holding a 12-digit PAN", purpose: "x\(RefusalTests.luhn12)", code: "invalid_purpose"),
            Invalid(name: "empty reference", reference: "", code: "invalid_reference"),
            Invalid(name: "reference with a space", reference: "order 1", code: "invalid_reference"),
            Invalid(
                name: "reference of 129 characters", reference: String(repeating: "r", count: 129),
                code: "invalid_reference"),
            Invalid(name: "reference holding a PAN", reference: "order-4111111111111111", code: "invalid_reference"),
            Invalid(name: "reference that is a PAN", reference: "5555555555554444", code: "invalid_reference"),
            Invalid(
                name: "reference holding a 19-digit PAN", reference: "x:\(RefusalTests.luhn19)",
                code: "invalid_reference"),
            Invalid(name: "reference with a newline", reference: "a\nb", code: "invalid_reference"),
        ]
    }

    /// Generated Luhn-valid numbers of the shortest and longest PAN lengths.
    static let luhn12: String = {
        var generator = SeededGenerator(seed: 12)
        return PANGenerator.pan(length: 12, using: &generator).pan
    }()
    static let luhn19: String = {
        var generator = SeededGenerator(seed: 19)
        return PANGenerator.pan(length: 19, using: &generator).pan
    }()

    @Test("Invalid requests: bad_request codes, audited without the reference", arguments: Invalid.all)
    func invalid(request: Invalid) async throws {
        try await withHarness { harness in
            let token = try await harness.tokenize([.visa])[0]
            let credential = try await harness.credential()
            let (error, records) = try await harness.newAuditRecords {
                await refusal {
                    try await harness.detokenize(
                        Array(repeating: token, count: request.count), purpose: request.purpose,
                        reference: request.reference, as: credential)
                }
            }
            #expect(error?.category == .invalidInput)
            #expect(error?.code == request.code)
            Self.expectDenied(
                records, actor: credential.id, code: request.code,
                purpose: request.purposeAudited ? request.purpose : nil)
            let audit = try await harness.renderedAudit()
            for pan in ["4111111111111111", "5555555555554444", Self.luhn12, Self.luhn19] {
                #expect(!audit.contains(pan))
                #expect(!harness.renderedLogs.contains(pan))
                #expect(error.map { !$0.message.contains(pan) } ?? true)
            }
        }
    }

    @Test("A reference with digit runs shorter than a card number is accepted and audited")
    func referenceWithNonPANDigits() async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize([.visa])
            let credential = try await harness.credential()
            let reference = "order-41111111111-2026"
            let (results, records) = try await harness.newAuditRecords {
                try await harness.detokenize(tokens, reference: reference, as: credential)
            }
            #expect(results.map(\.pan) == [TestCard.visa.pan])
            #expect(records.map(\.event.reference) == [reference])
        }
    }

    @Test("Unknown and deleted tokens: token_not_found, listed in the success record")
    func unknownAndDeleted() async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize([.visa, .amex, .discover])
            let numeric = try await harness.tokenize([.mastercard], format: .numeric)[0]
            try await harness.vault.tokens.delete(Token(unchecked: tokens[1]))
            try await harness.vault.tokens.delete(Token(unchecked: numeric))
            let credential = try await harness.credential()
            let request = [tokens[0], tokens[1], unknownToken, numeric, tokens[2]]
            let (results, records) = try await harness.newAuditRecords {
                try await harness.detokenize(request, as: credential)
            }
            #expect(results.map(\.token) == request)
            #expect(results.map(\.errorCode) == [nil, "token_not_found", "token_not_found", "token_not_found", nil])
            #expect(results.map(\.pan) == [TestCard.visa.pan, nil, nil, nil, TestCard.discover.pan])
            try #require(records.count == 1)
            #expect(records[0].event.outcome == .success)
            #expect(records[0].event.objects == request)
            #expect(records[0].event.detail?.contains("found=2 missing=3") == true, "\(records[0].event)")

            // Only unknown tokens: still a result each, still audited.
            let (missing, more) = try await harness.newAuditRecords {
                try await harness.detokenize([unknownToken], as: credential)
            }
            #expect(missing.map(\.errorCode) == ["token_not_found"])
            #expect(more.map(\.event.objects) == [[unknownToken]])
        }
    }

    @Test("A PAN sent as a token: invalid_token with no token, and the PAN is nowhere in the audit log or logs")
    func panAsToken() async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize([.visa2])
            let credential = try await harness.credential()
            var generator = SeededGenerator()
            let generated = PANGenerator.pan(length: 16, using: &generator).pan
            let pans = TestCard.published.map(\.pan) + [generated]
            let sent = pans + ["4111 1111 1111 1111", "4111-1111-1111-1111", "", "tok_short"]
            let (results, records) = try await harness.newAuditRecords {
                try await harness.detokenize(
                    sent + tokens, reveal: .masked, purpose: "cardholder_reveal", as: credential)
            }
            try #require(results.count == sent.count + 1)
            for result in results.dropLast() {
                #expect(result.token == nil)
                #expect(result.errorCode == "invalid_token")
                if case .error(_, _, let message) = result {
                    #expect(pans.allSatisfy { !message.contains($0) })
                }
            }
            #expect(results.last?.maskedPan == TestCard.visa2.masked)
            #expect(records.map(\.event.objects) == [tokens])
            #expect(records.map(\.event.outcome) == [.success])
            #expect(records[0].event.detail?.contains("invalid=\(sent.count)") == true)

            // Also a refused request that carried them.
            _ = await refusal {
                try await harness.detokenize(sent, purpose: "chargeback", as: credential)
            }
            let audit = try await harness.renderedAudit()
            let logs = harness.renderedLogs
            for pan in pans {
                #expect(!audit.contains(pan), "generated seed \(generator.seed)")
                #expect(!logs.contains(pan), "generated seed \(generator.seed)")
                #expect(!audit.contains(String(pan.dropFirst(1))))
            }
            // Checked on the stored rows as well, not only on the decoded records.
            let stored = try await harness.vault.database.pool.read { db in
                try String.fetchAll(
                    db,
                    sql: "SELECT actor || objects || origin || IFNULL(purpose, '') || IFNULL(reference, '') "
                        + "|| IFNULL(detail, '') FROM audit_log")
            }.joined(separator: "\n")
            for pan in pans { #expect(!stored.contains(pan)) }
        }
    }
}
