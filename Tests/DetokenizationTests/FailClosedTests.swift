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

/// Audit before reveal, fail closed: no audit record, no plaintext.
@Suite("Detokenize fails closed")
struct FailClosedTests {
    @Test("If the audit log cannot be written: auditUnavailable and no result", arguments: RevealLevel.allCases)
    func failingAudit(reveal: RevealLevel) async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize(TestCard.published)
            let credential = try await harness.credential()
            let failing = FailingAuditLog()
            let detokenizer = harness.detokenizer(audit: failing)
            let before = try await harness.auditRecords().count
            var revealed: [DetokenizeResult]?
            let error = await refusal {
                revealed = try await harness.detokenize(
                    tokens + [unknownToken], reveal: reveal, as: credential, using: detokenizer)
                return revealed
            }
            #expect(error?.category == .unavailable)
            #expect(error?.code == "audit_unavailable")
            #expect(revealed == nil)
            #expect(failing.attempts == 1)
            // Nothing reached the real log either, and nothing was logged with a card number.
            #expect(try await harness.auditRecords().count == before)
            for card in TestCard.published {
                #expect(!harness.renderedLogs.contains(card.pan))
                #expect(error.map { !$0.message.contains(card.pan) } ?? true)
            }
        }
    }

    @Test("Refusals still refuse when the audit log cannot be written, and the failure is logged")
    func failingAuditOnRefusal() async throws {
        try await withHarness { harness in
            let failing = FailingAuditLog()
            let detokenizer = harness.detokenizer(audit: failing)
            let error = await refusal { try await detokenizer.authorize(harness.caller(nil)) }
            #expect(error?.category == .unauthenticated)
            #expect(failing.attempts == 1)
            #expect(harness.logs.entries.contains { $0.level == .error && "\($0.message)".contains("audit") })

            let credential = try await harness.credential(purposes: ["settlement"])
            let purpose = await refusal {
                try await harness.detokenize([unknownToken], purpose: "chargeback", as: credential, using: detokenizer)
            }
            #expect(purpose?.code == "purpose_not_allowed")
        }
    }

    @Test("The record is committed before the results are returned, and lists every token")
    func auditBeforeReveal() async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize([.visa, .amex])
            let credential = try await harness.credential()
            // Each append notes whether the detokenizer had returned by the time it committed.
            let returned = Locked(false)
            let spy = SpyAuditLog(base: harness.vault.audit) { returned.value }
            let detokenizer = harness.detokenizer(audit: spy)
            let results = try await harness.detokenize(
                [tokens[0], unknownToken, tokens[1]], reveal: .pan, reference: "settle:2031-01", as: credential,
                using: detokenizer)
            returned.value = true
            #expect(results.map(\.pan) == [TestCard.visa.pan, nil, TestCard.amex.pan])
            #expect(!spy.appends.contains { $0.note }, "an append committed after the results were returned")
            #expect(spy.events.map(\.objects) == [[tokens[0], unknownToken, tokens[1]]])
            // Durable in the vault's own log, not only handed to the spy.
            var stored = try #require(try await harness.auditRecords().last?.event)
            var spied = try #require(spy.events.last)
            // The log keeps milliseconds.
            #expect(abs(stored.time.timeIntervalSince(spied.time)) < 0.001)
            (stored.time, spied.time) = (Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 0))
            #expect(stored == spied)
            #expect(stored.reference == "settle:2031-01")
        }
    }
}
