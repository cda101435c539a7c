import Audit
import CDETestSupport
import Foundation
import HTTPTypes
import Testing
import TokenVault
import VaultServer

/// Security review, issue 8, finding 10: a card number printed in groups (`4111-1111-1111-1111`,
/// or with `.` or `/`) passed the detokenize `reference` check and landed in the audit log.
@Suite("Finding 10: grouped card numbers are refused in audited fields")
struct GroupedReferenceTests {
    @Test(
        "Finding 10: a reference holding a grouped card number is refused and never reaches the audit log",
        arguments: [
            "4111-1111-1111-1111", "4111.1111.1111.1111", "4111/1111/1111/1111", "order:5555-5555-5555-4444",
            "batch-3782-822463-10005", "ref_4242.4242.4242.4242",
        ])
    func finding10GroupedReferenceIsRefused(reference: String) async throws {
        try await withDetokenizeServer { server in
            let (reply, records) = try await server.newAuditRecords {
                try await server.detokenize([unknownToken], reference: reference)
            }
            #expect(reply.status == .badRequest, "\(reply)")
            #expect(reply.errorCode == "invalid_reference", "\(reply)")
            #expect(
                records.count == 1 && records.allSatisfy { $0.event.outcome == .denied && $0.event.reference == nil })
            // Nowhere in the log or the answer, in any grouping: compare the digits alone.
            let digits = String(reference.filter(\.isNumber))
            let audit = try await server.renderedAudit().filter { $0.isNumber || $0 == "\n" }
            #expect(!audit.contains(digits))
            #expect(!reply.text.filter(\.isNumber).contains(digits))
        }
    }
}
