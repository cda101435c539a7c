import Audit
import CDETestSupport
import Foundation
import HTTPTypes
import Testing
import TokenVault
import VaultServer
import VaultTestSupport

/// Security review, issue 8, finding 9: `GET /v1/audit?after=N` with N ≥ 1 read the log without
/// an `audit.read` record, so the whole log could be read unrecorded (PCI DSS 10.2.1.3).
@Suite("Finding 9: every read of the audit log is audited")
struct AuditReadTests {
    @Test(
        "Finding 9: each page of GET /v1/audit appends one audit.read record, whatever after is",
        arguments: ["?after=1", "?after=2&limit=1", "?limit=2", "", "?after=1000000"])
    func finding9EveryPageIsAudited(query: String) async throws {
        try await withDetokenizeServer { server in
            let (reply, records) = try await server.newAuditRecords { try await server.auditPage(query) }
            #expect(reply.status == .ok, "\(reply)")
            #expect(records.count == 1, "\(records)")
            let read = try #require(records.first?.event)
            #expect(read.type == "audit.read")
            #expect(read.actor == server.auditCredential.id)
            #expect(read.outcome == .success)
            let page = try reply.decode(AuditPageReply.self)
            let after = query.split(separator: "after=").dropFirst().first.map { $0.prefix { $0 != "&" } } ?? "0"
            #expect(read.detail == "after=\(after) records=\(page.records.count)")
        }
    }
}
