import Foundation
import HTTPTypes
import InMemoryLogging
import Testing
import VaultTestSupport

/// Finding 12: wallet errors echoed the ids a client sent (`no wallet 4111111111111111`). A
/// client that puts a card number where an id goes by mistake must not get it back, in any
/// route, path or body field.
@Suite("Wallet routes never echo client ids")
struct WalletRouteLeakTests {
    static let pans = ["4111111111111111", "4242424242424242"]

    @Test("Finding 12: a test PAN as every wallet, card, token and currency id, in paths and bodies, is never echoed")
    func finding12NoIDEchoed() async throws {
        try await withServer(wallets: WalletSetup(authorizer: FakeAuthorizer())) { server in
            let fixture = try await WalletRouteTests.fixture(server, funds: 0)
            var replies = [(request: String, reply: Reply)]()
            for pan in Self.pans {
                let spaced = stride(from: 0, to: 16, by: 4).map { offset in
                    String(pan.dropFirst(offset).prefix(4))
                }.joined(separator: "%20")
                for id in [pan, spaced] {
                    func record(_ request: String, _ reply: Reply) { replies.append((request, reply)) }
                    record("GET wallet", try await server.walletGet("/v1/wallets/\(id)"))
                    record("GET cards", try await server.walletGet("/v1/wallets/\(id)/cards"))
                    record("GET transactions", try await server.walletGet("/v1/wallets/\(id)/transactions"))
                    record(
                        "POST cards (path)",
                        try await server.walletPost("/v1/wallets/\(id)/cards", json: ["token": fixture.card.token]))
                    record(
                        "POST cards (token)",
                        try await server.walletPost("/v1/wallets/\(fixture.wallet.id)/cards", json: ["token": pan]))
                    record(
                        "POST top_ups (path)", try await server.topUp(id, card: fixture.card.id, amount: 100))
                    record("POST top_ups (card_id)", try await server.topUp(fixture.wallet.id, card: pan, amount: 100))
                    record(
                        "POST top_ups (currency)",
                        try await server.topUp(fixture.wallet.id, card: fixture.card.id, amount: 100, currency: pan))
                    record(
                        "POST transfers (from)", try await server.transfer(from: pan, to: fixture.other.id, amount: 1))
                    record(
                        "POST transfers (to)", try await server.transfer(from: fixture.wallet.id, to: pan, amount: 1))
                    record("POST transfers (both)", try await server.transfer(from: pan, to: pan, amount: 1))
                    record(
                        "POST transfers (currency)",
                        try await server.transfer(
                            from: fixture.wallet.id, to: fixture.other.id, amount: 1, currency: pan))
                    record(
                        "POST wallets (owner_ref)",
                        try await server.walletPost("/v1/wallets", json: ["owner_ref": pan, "currency": "EUR"]))
                    record(
                        "POST wallets (currency)",
                        try await server.walletPost("/v1/wallets", json: ["owner_ref": "o", "currency": pan]))
                    record(
                        "POST wallets (Idempotency-Key)",
                        try await server.walletPost(
                            "/v1/wallets", json: ["owner_ref": "o", "currency": "EUR"], idempotencyKey: pan))
                }
            }
            for (request, reply) in replies {
                #expect(reply.status.code >= 400 && reply.status.code < 500, "\(request): \(reply)")
                #expect(reply.errorCode != nil, "\(request): not the error envelope: \(reply)")
                let leaked = PANScanner.leaked(Set(Self.pans), in: reply.text)
                #expect(leaked.isEmpty, "\(request) echoes a PAN: \(reply)")
            }
            let logs = server.logs.entries.map(TestLog.rendered).joined(separator: "\n")
            #expect(PANScanner.leaked(Set(Self.pans), in: logs).isEmpty, "a PAN reached the log")
        }
    }
}
