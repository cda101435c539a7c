import Audit
import CDETestSupport
import CardTokens
import Detokenization
import Foundation
import Testing
import TokenVault
import VaultTestSupport

/// Issue 8, finding 5: unauthenticated callers cannot write text of their choosing into the
/// durable audit log, nor fill it.
@Suite("What callers can put into the audit log")
struct AuditedCallerTests {
    @Test("Finding 5: only a well-formed key id is recorded; a card number or combining marks become a marker")
    func presentedIDsAreChecked() {
        let tail = String(repeating: "A", count: 43)
        #expect(CredentialService.id(ofSecret: "vk_abcdefgh01234567_\(tail)") == "abcdefgh01234567")
        #expect(CredentialService.id(ofSecret: "vk_4111111111111111_\(tail)") == "4111111111111111")
        let marks = String(repeating: "a\u{301}\u{302}\u{303}\u{304}", count: 16)
        #expect(CredentialService.id(ofSecret: "vk_\(marks)_\(tail)") == nil)
        #expect(CredentialService.id(ofSecret: "vk_ABCDEFGH01234567_\(tail)") == nil)
        #expect(CredentialService.id(ofSecret: "vk_abcdefgh01234567_\(tail)x") == nil)
        #expect(CredentialService.id(ofSecret: "vk_abcdefgh01234567_" + String(repeating: "é", count: 43)) == nil)

        let cases: [(String?, String)] = [
            ("abcdefgh01234567", "unknown:abcdefgh01234567"),
            ("4111111111111111", "unknown:malformed"),
            ("9378282246310005", "unknown:malformed"),
            ("abc012345678901x", "unknown:malformed"),
            ("abcd01234567890x", "unknown:abcd01234567890x"),
            ("malformed", "unknown:malformed"),
            (marks, "unknown:malformed"),
            (nil, "anonymous"),
        ]
        for (presented, actor) in cases {
            #expect(Caller(credential: nil, presentedID: presented, origin: "192.0.2.1").actor == actor)
        }
    }

    @Test("Finding 5: every audited string is checked for a card number before it is stored")
    func cardNumbersAreRedacted() async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize([TestCard.visa], format: .numeric)
            let event = AuditEvent(
                actor: "unknown:4111111111111111", type: "detokenize", outcome: .denied, origin: "4242 4242 4242 4242",
                objects: [tokens[0], "5555-5555-5555-4444", "data_key:3"], purpose: "settlement",
                reference: "ref 378282246310005", detail: "refused=x 6011111111111117")
            try await harness.vault.audit.append(event)
            let stored = try #require(try await harness.auditRecords().last?.event)
            #expect(stored.actor == AuditEvent.redacted)
            #expect(stored.origin == AuditEvent.redacted)
            #expect(stored.objects == [tokens[0], AuditEvent.redacted, "data_key:3"])
            #expect(stored.purpose == "settlement")
            #expect(stored.reference == AuditEvent.redacted && stored.detail == AuditEvent.redacted)
            #expect(try await harness.vault.audit.verify().ok)
            let rendered = try await harness.renderedAudit()
            for pan in ["4111111111111111", "4242 4242", "5555-5555", "378282246310005", "6011111111111117"] {
                #expect(!rendered.contains(pan))
            }
        }
    }

    @Test("Review: a card number behind other digits, with no known prefix in front, is redacted too")
    func cardNumbersBehindDigitsAreRedacted() async throws {
        try await withHarness { harness in
            let event = AuditEvent(
                actor: "auditor", type: "audit.read", outcome: .success, origin: "192.0.2.1",
                detail: "after=0 records=3 actor=94111111111111111")
            try await harness.vault.audit.append(event)
            let stored = try #require(try await harness.auditRecords().last?.event)
            #expect(stored.detail == AuditEvent.redacted)
            #expect(try await harness.vault.audit.verify().ok)
        }
    }

    @Test("Finding 5: refusals without a valid key are coalesced per peer")
    func unauthenticatedRefusalsAreCoalesced() async throws {
        try await withHarness { harness in
            let detokenizer = Detokenizer(
                tokens: harness.vault.tokens, audit: harness.vault.audit, rateLimiter: nil,
                unauthenticatedRefusals: RateLimiter(rate: 0.0001, burst: 3), logger: harness.logger)
            let (_, records) = try await harness.newAuditRecords {
                for _ in 0..<50 {
                    _ = await refusal { try await detokenizer.authorize(harness.caller(nil, presentedID: "malformed")) }
                }
                let elsewhere = Caller(credential: nil, origin: "198.51.100.9")
                _ = await refusal { try await detokenizer.authorize(elsewhere) }
            }
            #expect(records.count == 4)
            #expect(records.filter { $0.event.origin == Harness.origin }.count == 3)
            #expect(records.allSatisfy { $0.event.actor == "unknown:malformed" || $0.event.actor == "anonymous" })
            // A refusal of a real key is always recorded.
            let credential = try await harness.credential([.tokenize], purposes: [])
            let (_, more) = try await harness.newAuditRecords {
                _ = await refusal { try await detokenizer.authorize(harness.caller(credential)) }
            }
            #expect(more.count == 1)
        }
    }
}
