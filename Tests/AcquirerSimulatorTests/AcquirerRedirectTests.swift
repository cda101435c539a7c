import CardTokens
import Detokenization
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing
import VaultTestSupport

/// Issue 8, finding 17: the acquirer link does not follow redirects.
@Suite("Acquirer link", .timeLimit(.minutes(10)))
struct AcquirerRedirectTests {
    @Test("Finding 17: a redirect from the acquirer is refused, and the request never reaches its target")
    func redirectsAreNotFollowed() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            let hits = Atomic<Int>(0)
            let target = Router()
            target.post("/v1/authorizations") { _, _ in
                hits.add(1, ordering: .relaxed)
                return HTTPResponse.Status.ok
            }
            let targetApp = Application(
                router: target, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
            try await targetApp.test(.live) { targetClient in
                let redirecting = Router()
                let location = "http://127.0.0.1:\(targetClient.port!)/v1/authorizations"
                for status in [HTTPResponse.Status.temporaryRedirect, .permanentRedirect, .found] {
                    redirecting.post("/\(status.code)/v1/authorizations") { _, _ in
                        Response(status: status, headers: [.location: location])
                    }
                }
                let app = Application(
                    router: redirecting, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
                try await app.test(.live) { client in
                    for status in [307, 308, 302] {
                        let endpoint = try AcquirerEndpoint(
                            baseURL: "http://127.0.0.1:\(client.port!)/\(status)",
                            publicKey: [UInt8](repeating: 9, count: 32))
                        let gateway = try harness.gateway(endpoint: endpoint)
                        let error = await authorizationError {
                            try await gateway.authorize(
                                AuthorizationGatewayTests.request(token, amount: 1000, reference: "redirect-\(status)"))
                        }
                        #expect(error != nil, "HTTP \(status)")
                    }
                }
            }
            #expect(hits.load(ordering: .relaxed) == 0)
        }
    }
}
