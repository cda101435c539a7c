import Foundation
import Testing

/// An acknowledged write is durable (DESIGN §9): every token answered with 201 survives SIGKILL.
@Suite("Durability", .timeLimit(.minutes(10)))
struct DurabilityTests {
    @Test("every token acknowledged with 201 survives kill -9 of the server")
    func acknowledgedTokensSurviveSIGKILL() async throws {
        try await withSandbox { sandbox in
            let credential = try await sandbox.createCredential()
            let key = credential.secret
            let server = try await ServerProcess.start(sandbox)
            defer { server.killNow() }
            let client = APIClient(server)
            let replies = try await concurrentMap(TestCards.generated(300), width: 8) { pan in
                try await client.tokenize(.init(pan: pan), key: key)
            }
            server.killNow()

            let tokens = replies.compactMap { $0.status == 201 ? $0.token : nil }
            #expect(tokens.count == 300, "only \(tokens.count) of 300 requests answered 201 with a token")
            #expect(Set(tokens).count == tokens.count, "duplicate tokens")

            try await withServer(sandbox) { _, client in
                let reads = try await concurrentMap(tokens, width: 8) { token in
                    (token, try await client.metadataStatus(token, key: key))
                }
                let lost = reads.filter { $0.1 != 200 }
                #expect(lost.isEmpty, "\(lost.count) acknowledged tokens lost, e.g. \(lost.prefix(3))")
            }
            #expect(try await sandbox.keyStatus().records(under: 1) == tokens.count)
        }
    }
}
