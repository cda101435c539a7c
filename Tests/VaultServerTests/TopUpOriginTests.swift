import CardTokens
import Foundation
import HTTPTypes
import Testing
import VaultServer
import VaultTestSupport

/// Security review, issue 8, finding 15: a top-up reached the gateway without the caller's
/// address, so its audit record named the constant origin `wallet` (PCI DSS 10.2.2).
@Suite("Finding 15: top-ups carry the caller's address to the gateway", .timeLimit(.minutes(10)))
struct TopUpOriginTests {
    @Test("Finding 15: POST /v1/wallets/{id}/top_ups hands the HTTP peer's address to the authorizer")
    func finding15TopUpCarriesTheRemoteAddress() async throws {
        let authorizer = FakeAuthorizer()
        try await withServer(transport: .live, wallets: WalletSetup(authorizer: authorizer)) { server in
            let wallet = try await server.createWallet()
            let card = try await server.addCard(.visa, to: wallet.id)
            let reply = try await server.topUp(wallet.id, card: card.id, amount: 500)
            #expect(reply.status == .created, "\(reply)")
            let request = try #require(authorizer.requests.last)
            #expect(request.origin == "127.0.0.1")
        }
    }
}
