import Foundation
import Testing
import VaultTestSupport

@Suite("vault credentials revoke", .timeLimit(.minutes(10)))
struct CredentialRevocationTests {
    @Test("a key revoked by the CLI stops working on a running server, without a restart")
    func revokedKeyStopsWorking() async throws {
        try await withSandbox { sandbox in
            let revoked = try await sandbox.createCredential(name: "leaked", scopes: ["tokenize"])
            let other = try await sandbox.createCredential(name: "other", scopes: ["tokenize"])
            try await withServer(sandbox) { _, client in
                let card = APIClient.Card(pan: TestCard.visa2.pan)
                #expect(try await client.tokenize(card, key: revoked.secret).status == 201)

                try await sandbox.vaultSucceeding(["credentials", "revoke", revoked.id])
                // The server reloads credentials every second; the bound is for a loaded machine.
                var status = 0
                let elapsed = try await eventually {
                    status = try await client.tokenize(card, key: revoked.secret).status
                    return status == 401
                }
                #expect(elapsed != nil, "the revoked key still answers \(status) a minute after the revocation")
                #expect(try await client.tokenize(card, key: other.secret).status == 201, "revoke hit another key")
            }
            let list = try JSONCoding.array(
                try await sandbox.vaultSucceeding(["credentials", "list", "--json"]).stdout)
            #expect(list.first { $0["id"] as? String == revoked.id }?["revoked_at"] != nil)
            #expect(list.first { $0["id"] as? String == other.id }?["revoked_at"] == nil)
        }
    }
}
