import Audit
import CDETestSupport
import CardTokens
import Detokenization
import Foundation
import Testing
import TokenVault
import VaultTestSupport

/// Issue 8, finding 7: what a detokenize key may reveal is granted per purpose (masked only or
/// full PAN), and the limits count tokens revealed, not requests. Finding 13: a key sees only
/// its tenant's tokens.
@Suite("Detokenize grants, token-counted limits and tenants")
struct GrantTests {
    @Test("Finding 7: a purpose granted masked only refuses reveal pan (403 reveal_not_allowed, audited)")
    func maskedOnlyGrant() async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize([.visa, .mastercard])
            let maskedOnly = try await harness.credential(purposes: ["settlement", "chargeback:pan"])
            #expect(maskedOnly.panPurposes == ["chargeback"])
            let masked = try await harness.detokenize(tokens, reveal: .masked, as: maskedOnly)
            #expect(masked.map(\.maskedPan) == ["411111******1111", "555555******4444"])
            let (error, records) = try await harness.newAuditRecords {
                await refusal { try await harness.detokenize(tokens, reveal: .pan, as: maskedOnly) }
            }
            #expect(error?.code == "reveal_not_allowed")
            #expect(error?.category == .forbidden)
            RefusalTests.expectDenied(
                records, actor: maskedOnly.id, code: "reveal_not_allowed", purpose: "settlement",
                reference: "batch-1", objects: tokens)
            let full = try await harness.detokenize(tokens, reveal: .pan, purpose: "chargeback", as: maskedOnly)
            #expect(full.map(\.pan) == [TestCard.visa.pan, TestCard.mastercard.pan])
        }
    }

    @Test("Review: a masked 12- to 14-digit PAN shows only its last four; from 15 digits, BIN and last four")
    func shortPANsMaskTheBIN() async throws {
        try await withHarness { harness in
            let cards = [
                TestCard(pan: "4222222222222"), TestCard(pan: "378282246310005"), TestCard(pan: "4111111111111111"),
            ]
            let tokens = try await harness.tokenize(cards)
            let masked = try await harness.detokenize(tokens, reveal: .masked, as: try await harness.credential())
            #expect(masked.map(\.maskedPan) == ["*********2222", "378282*****0005", "411111******1111"])
        }
    }

    @Test("Finding 7: the grant survives a reload from the database, and bad grants are refused")
    func grantsAreStored() async throws {
        try await withHarness { harness in
            let (created, secret) = try await harness.vault.credentials.create(
                name: "settlement", scopes: [.detokenize], purposes: ["settlement:pan", "chargeback:masked"])
            try await harness.vault.credentials.reload()
            let loaded = try #require(await harness.vault.credentials.authenticate(secret: secret))
            #expect(loaded.purposes == ["chargeback", "settlement"])
            #expect(loaded.panPurposes == ["settlement"])
            #expect(loaded.purposeGrants == ["chargeback:masked", "settlement:pan"])
            #expect(loaded.id == created.id && loaded.tenant == "default")
            for bad in ["settlement:full", "settlement:", ":pan", "Settlement:pan", "settlement:pan:pan"] {
                await #expect(throws: VaultError.self, "\(bad)") {
                    try await harness.vault.credentials.create(name: "x", scopes: [.detokenize], purposes: [bad])
                }
            }
        }
    }

    @Test("Finding 7: the rate limit counts tokens: one request of many tokens takes many")
    func rateLimitCountsTokens() async throws {
        try await withHarness(rateLimiter: RateLimiter(rate: 0.001, burst: 10)) { harness in
            let tokens = try await harness.tokenize(Array(repeating: TestCard.visa, count: 8))
            let credential = try await harness.credential()
            #expect(try await harness.detokenize(tokens, reveal: .masked, as: credential).count == 8)
            // 2 of 10 left: a request of 3 tokens is refused although it is only the second request.
            let error = await refusal { try await harness.detokenize(Array(tokens[0..<3]), as: credential) }
            #expect(error?.code == "rate_limited")
            #expect(try await harness.detokenize(Array(tokens[0..<2]), as: credential).count == 2)
        }
    }

    @Test("Finding 7: full PANs are limited per key per UTC day; masked reveals do not count")
    func dailyPANLimit() async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize([.visa, .visa2, .mastercard, .amex])
            let detokenizer = Detokenizer(
                tokens: harness.vault.tokens, audit: harness.vault.audit, rateLimiter: nil,
                panQuota: DailyQuota(limit: 5), logger: harness.logger)
            let credential = try await harness.credential()
            _ = try await harness.detokenize(tokens, reveal: .masked, as: credential, using: detokenizer)
            _ = try await harness.detokenize(tokens, reveal: .pan, as: credential, using: detokenizer)
            let (error, records) = try await harness.newAuditRecords {
                await refusal {
                    try await harness.detokenize(Array(tokens[0..<2]), reveal: .pan, as: credential, using: detokenizer)
                }
            }
            #expect(error?.code == "daily_limit_reached")
            if error?.category == .rateLimited, let seconds = error?.retryAfterSeconds {
                #expect((1...86_400).contains(seconds))
            } else {
                Issue.record("expected rateLimited, got \(String(describing: error))")
            }
            #expect(records.count == 1 && records.first?.event.outcome == .denied)
            // One more fits today; masked is never counted.
            #expect(try await harness.detokenize([tokens[0]], as: credential, using: detokenizer).count == 1)
            _ = try await harness.detokenize(tokens, reveal: .masked, as: credential, using: detokenizer)
        }
    }

    @Test("Finding 7: a daily quota starts again on the next UTC day")
    func dailyQuotaRollsOver() {
        let quota = DailyQuota(limit: 3)
        let day = Date(timeIntervalSince1970: 86_400 * 20_000 + 3600)
        #expect(quota.take("k", count: 3, now: day) == nil)
        #expect(quota.take("k", count: 1, now: day) == 86_400 - 3600)
        #expect(quota.take("other", count: 3, now: day) == nil)
        #expect(quota.take("k", count: 3, now: day.addingTimeInterval(86_400 - 3600)) == nil)
    }

    @Test("Finding 13: a detokenize key of another tenant finds no token")
    func tenantsAreSeparate() async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize([.visa])
            let foreign = try await harness.vault.credentials.create(
                name: "acme-settlement", scopes: [.detokenize], purposes: ["settlement:pan"], tenant: "acme"
            ).credential
            let results = try await harness.detokenize(tokens, as: foreign)
            #expect(results == [.error(token: tokens[0], code: "token_not_found", message: "no such token")])
            let acmeToken = try await harness.vault.tokens.tokenize(
                try TestCard.mastercard.request(), by: foreign.principal
            ).metadata.token.rawValue
            #expect(try await harness.detokenize([acmeToken], as: foreign).map(\.pan) == [TestCard.mastercard.pan])
            let home = try await harness.credential()
            #expect(try await harness.detokenize([acmeToken], as: home).map(\.pan) == [nil])
        }
    }
}
