import AcquirerSimulator
import CardTokens
import Detokenization
import Foundation
import Testing
import TokenVault
import VaultTestSupport

/// Security review, issue 8, finding 3: CVVs are sealed under keys held only in the memory of
/// the process that took them (crypto-shredding), so a restart ends every held CVV.
@Suite("Finding 3: held CVVs end with the process", .timeLimit(.minutes(10)))
struct CVVRestartTests {
    @Test("Finding 3: after a restart the gateway charges without the CVV given before it, and deletes it")
    func finding3RestartEndsHeldCVVs() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            // The same database, a new process: its TokenVault holds no CVV key from before.
            let restarted = TokenVault(
                store: harness.vault.store, keyRing: harness.vault.keyRing, logger: harness.logger)
            #expect(try await restarted.metadata(of: token).cvvExpiresAt == nil, "not held after the restart")
            let gateway = AuthorizationGateway(
                tokens: restarted, audit: harness.vault.audit, acquirer: try harness.endpoint(), logger: harness.logger)
            let outcome = try await gateway.authorize(
                AuthorizationGatewayTests.request(token, reference: "after-restart"))
            #expect(outcome.decision == .approved)
            #expect(try await harness.simulator.authorization(reference: "after-restart").cvvPresent == false)
            #expect(try await AuthorizationGatewayTests.heldCVVs(harness.vault) == 0, "the unusable row is gone too")
        }
    }
}
