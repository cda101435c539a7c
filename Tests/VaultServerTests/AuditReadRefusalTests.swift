import Audit
import Detokenization
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import TokenVault
import VaultServer
import VaultTestSupport

/// Review of issue 8, findings 5 and 9: refused reads of the audit log without a valid key are
/// coalesced per peer like refused detokenize requests, never stored as sent, and every granted
/// read names its filters.
@Suite("Audit route refusals and reads")
struct AuditReadRefusalTests {
    @Test("Refused audit reads without a valid key are coalesced per peer; a card-like key id is never stored")
    func refusedReadsAreCoalesced() async throws {
        try await withServer { server in
            let (logger, _) = TestLog.capturing(level: .warning)
            let detokenizer = Detokenizer(
                tokens: server.vault.tokens, audit: server.vault.audit, rateLimiter: nil,
                unauthenticatedRefusals: RateLimiter(rate: 0.0001, burst: 3), logger: logger)
            let router = VaultApplication.detokenizeRouter(vault: server.vault, detokenizer: detokenizer)
            let before = try await server.vault.audit.records(limit: 1_000_000).last?.sequence ?? 0
            try await Application(router: router, logger: logger).test(.router) { client in
                let forged = "vk_9378282246310005_" + String(repeating: "A", count: 43)
                for _ in 0..<40 {
                    let reply = try await client.execute(
                        uri: "/v1/audit", method: .get, headers: [.authorization: "Bearer \(forged)"])
                    #expect(reply.status == .unauthorized)
                }
            }
            let records = try await server.vault.audit.records(after: before, limit: 1_000_000)
            #expect(records.count == 3)
            #expect(records.allSatisfy { $0.event.type == "audit.read" && $0.event.actor == "unknown:malformed" })
            let rendered = records.map { "\($0.event)" }.joined()
            #expect(!rendered.contains("378282246310005"))
        }
    }

    @Test("A granted audit read records its filters")
    func readsRecordTheirFilters() async throws {
        try await withServer { server in
            let (credential, secret) = try await server.vault.credentials.create(
                name: "auditor", scopes: [.auditRead], purposes: [])
            let (logger, _) = TestLog.capturing(level: .warning)
            let router = VaultApplication.detokenizeRouter(vault: server.vault, rateLimit: nil, logger: logger)
            try await Application(router: router, logger: logger).test(.router) { client in
                let reply = try await client.execute(
                    uri: "/v1/audit?actor=someone&since=2026-01-01T00:00:00Z&limit=5", method: .get,
                    headers: [.authorization: "Bearer \(secret)"])
                #expect(reply.status == .ok)
            }
            let read = try #require(
                try await server.vault.audit.records(actor: credential.id, limit: 100).last {
                    $0.event.type == "audit.read"
                })
            #expect(read.event.detail?.contains("since=2026-01-01T00:00:00Z") == true)
            #expect(read.event.detail?.contains("actor=someone") == true)
        }
    }
}
