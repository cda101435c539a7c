import Foundation
import Synchronization
import Testing
import VaultTestSupport

/// Key rotation and rewrap by the CLI while `vault serve` runs in another process (DESIGN §3).
@Suite("Online rotation and rewrap", .timeLimit(.minutes(10)))
struct OnlineKeyLifecycleTests {
    /// Tokenizes a card every 250 ms until `keys status` shows a record under `version`, i.e.
    /// until the running server encrypts under it. Returns how long that took, or `nil` if it did
    /// not happen within a minute (the server reloads the key ring every second; the bound is
    /// for a loaded machine).
    static func waitUntilServerEncrypts(
        under version: Int, sandbox: Sandbox, client: APIClient, key: String
    ) async throws -> Duration? {
        try await eventually(every: .milliseconds(250)) {
            _ = try await client.tokenizeCreated(TestCards.generated(1)[0], key: key)
            return try await sandbox.keyStatus().records(under: version) > 0
        }
    }

    @Test("a running server encrypts under a key rotated by the CLI, without a restart")
    func serverPicksUpRotation() async throws {
        try await withSandbox { sandbox in
            let credential = try await sandbox.createCredential()
            try await withServer(sandbox) { _, client in
                _ = try await client.tokenizeCreated(TestCard.visa.pan, key: credential.secret)
                #expect(try await sandbox.keyStatus().records(under: 1) == 1)

                let rotate = try await sandbox.vaultSucceeding(["keys", "rotate", "--json"])
                #expect(try JSONCoding.object(rotate.stdout)["active_version"] as? Int == 2)
                let elapsed = try await Self.waitUntilServerEncrypts(
                    under: 2, sandbox: sandbox, client: client, key: credential.secret)
                #expect(elapsed != nil, "the server still encrypts under v1 a minute after `keys rotate`")
            }
        }
    }

    @Test("rewrap runs online: the server keeps tokenizing and answering for old tokens")
    func rewrapWhileServing() async throws {
        try await withSandbox { sandbox in
            let credential = try await sandbox.createCredential()
            let key = credential.secret
            try await withServer(sandbox) { server, client in
                // 1,000 card records under v1; every tenth with a CVV, which is under an in-memory
                // epoch key, not a data key: rewrap and the counts leave it alone.
                let cards = TestCards.generated(1000).enumerated().map { index, pan in
                    APIClient.Card(pan: pan, cvv: index % 10 == 0 ? "123" : nil)
                }
                let oldTokens = try await client.tokenizeBatch(cards, key: key)
                #expect(try await sandbox.keyStatus().records(under: 1) == 1000)

                try await sandbox.vaultSucceeding(["keys", "rotate"])
                // Start the rewrap once the server encrypts under v2, so that the number of records
                // under v1 is settled and `rewrapped` can be checked exactly.
                let pickedUp = try await Self.waitUntilServerEncrypts(
                    under: 2, sandbox: sandbox, client: client, key: key)
                try #require(pickedUp != nil, "the server did not pick up the rotation")
                let underV1 = try await sandbox.keyStatus().records(under: 1)

                let rewrapDone = Mutex(false)
                async let rewrap = {
                    let result = try await sandbox.vault(["keys", "rewrap", "--batch-size", "50", "--json"])
                    rewrapDone.withLock { $0 = true }
                    return result
                }()
                let statuses = try await concurrentMap(Array(0..<4), width: 4) { _ in
                    var statuses = [Int]()
                    while !rewrapDone.withLock({ $0 }) {
                        statuses.append(
                            try await client.tokenize(.init(pan: TestCards.generated(1)[0]), key: key).status)
                    }
                    return statuses
                }.flatMap { $0 }
                let result = try await rewrap

                #expect(result.succeeded, "\(result)")
                #expect(try JSONCoding.object(result.stdout)["rewrapped"] as? Int == underV1, "\(result)")
                #expect(!statuses.isEmpty, "no tokenize request ran during the rewrap")
                #expect(statuses.allSatisfy { $0 == 201 }, "tokenize during rewrap answered \(Set(statuses))")

                let status = try await sandbox.keyStatus()
                #expect(status.activeVersion == 2)
                #expect(status.recordsUnderOlderVersions == 0, "records left under v1 after rewrap")
                #expect(status.records(under: 2) >= 1000 + statuses.count)

                let reads = try await concurrentMap(oldTokens) { try await client.metadataStatus($0, key: key) }
                #expect(reads.allSatisfy { $0 == 200 }, "GET of old tokens answered \(Set(reads))")
                #expect(server.isRunning)
            }
        }
    }
}
