import Audit
import CDETestSupport
import CardTokens
import Detokenization
import Foundation
import Testing
import TokenVault
import VaultTestSupport

/// Security review, issue 8, finding 15: the gateway's audit records carried the constant origin
/// `wallet` instead of the caller's address (PCI DSS 10.2.2).
@Suite("Finding 15: the gateway audits the caller's address", .timeLimit(.minutes(10)))
struct GatewayOriginTests {
    @Test("Finding 15: granted and refused authorizations are audited with the request's origin")
    func finding15OriginIsTheCallersAddress() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            let gateway = try harness.gateway()
            var request = AuthorizationGatewayTests.request(token, reference: "topup-origin")
            request.origin = "203.0.113.7"
            #expect(try await gateway.authorize(request).decision == .approved)
            #expect(try await harness.auditRecords().last?.event.origin == "203.0.113.7")

            var refused = AuthorizationGatewayTests.request(token, amount: 0, reference: "topup-refused")
            refused.origin = "2001:db8::7"
            await #expect(throws: AuthorizationError.self) { try await gateway.authorize(refused) }
            let denied = try #require(try await harness.auditRecords().last?.event)
            #expect(denied.outcome == .denied && denied.origin == "2001:db8::7")

            // No caller address, or one that could smuggle a card number: the configured origin.
            for origin in [nil, "4111-1111-1111-1111", ""] {
                var other = AuthorizationGatewayTests.request(token, reference: "topup-\(origin?.count ?? -1)")
                other.origin = origin
                _ = try await gateway.authorize(other)
                #expect(try await harness.auditRecords().last?.event.origin == "wallet")
            }
        }
    }
}
