import Foundation
import Testing

@Suite("vault credentials revoke", .timeLimit(.minutes(10)))
struct CredentialRevocationTests {
    @Test("a key revoked by the CLI stops working on a running server within 5 seconds")
    func revokedKeyStopsWorking() async throws {
        try await withSandbox { sandbox in
            let revoked = try await sandbox.createCredential(name: "leaked", scopes: ["tokenize"])
            let other = try await sandbox.createCredential(name: "other", scopes: ["tokenize"])
            try await withServer(sandbox) { _, client in
                let card = APIClient.Card(pan: TestCards.published[1])
                #expect(try await client.tokenize(card, key: revoked.secret).status == 201)

                try await sandbox.vaultSucceeding(["credentials", "revoke", revoked.id])
                let clock = ContinuousClock()
                let start = clock.now
                var status = 0
                while clock.now - start <= .seconds(5) {
                    status = try await client.tokenize(card, key: revoked.secret).status
                    if status == 401 { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(status == 401, "the revoked key still answers \(status) after 5 seconds")
                #expect(try await client.tokenize(card, key: other.secret).status == 201, "revoke hit another key")
            }
            let list = try JSONCoding.array(
                try await sandbox.vaultSucceeding(["credentials", "list", "--json"]).stdout)
            #expect(list.first { $0["id"] as? String == revoked.id }?["revoked_at"] != nil)
            #expect(list.first { $0["id"] as? String == other.id }?["revoked_at"] == nil)
        }
    }
}
