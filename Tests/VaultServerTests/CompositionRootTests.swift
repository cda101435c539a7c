import Audit
import CardTokens
import Foundation
import GRDB
import Issuing
import Ledger
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import TokenVault
import VaultServer
import VaultTestSupport
import Wallet

/// The production wiring, in process, through the builder `vault serve` calls (issue 9): both
/// listeners, the gateway, the maintenance services, the head-file service, the invariant refusal.
@Suite("Composition root", .timeLimit(.minutes(5)))
struct CompositionRootTests {
    /// A fresh data folder and key folder with a key ring, removed afterwards.
    static func withConfiguration<R>(_ body: (VaultConfiguration) async throws -> R) async throws -> R {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("vault-root-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var configuration = VaultConfiguration(
            paths: VaultPaths(dataDirectory: root + "/data", keysDirectory: root + "/Keys"))
        configuration.publicPort = 0
        configuration.detokenizePort = 0
        configuration.networkPort = 0
        _ = try await Vault.initialize(paths: configuration.paths, logger: TestLog.quiet())
        return try await body(configuration)
    }

    @Test("vault serve's wiring serves both listeners with disjoint routes and writes the head file on the way out")
    func bothListeners() async throws {
        try await Self.withConfiguration { configuration in
            let (bound, continuation) = AsyncStream<(String, Int)>.makeStream()
            let services = try await VaultApplication.build(configuration, logger: TestLog.quiet()) { name, port in
                continuation.yield((name, port))
            }
            #expect(services.services.count == 6)
            let (_, key) = try await services.vault.credentials.create(
                name: "frontend", scopes: [.tokenize, .tokensRead], purposes: [])
            let group = services.serviceGroup(signals: [])
            let running = Task { try await group.run() }
            var ports = [String: Int]()
            for await (name, port) in bound {
                ports[name] = port
                if ports.count == 3 { break }
            }
            let publicPort = try #require(ports["public"])
            let detokenizePort = try #require(ports["detokenize"])
            let networkPort = try #require(ports["network"])
            #expect(Set([publicPort, detokenizePort, networkPort]).count == 3)

            func request(_ port: Int, _ text: String) async throws -> Int {
                let connection = try RawConnection(port: port)
                try await connection.send(text)
                return try await connection.readResponse().status
            }
            for port in [publicPort, detokenizePort, networkPort] {
                #expect(try await request(port, "GET /healthz HTTP/1.1\r\nHost: vault\r\n\r\n") == 200)
            }
            let detokenize = "POST /v1/detokenize HTTP/1.1\r\nHost: vault\r\nContent-Length: 2\r\n\r\n{}"
            #expect(try await request(publicPort, detokenize) == 404)
            #expect(try await request(detokenizePort, detokenize) == 401)
            let wallets = "GET /v1/wallets/wal_x HTTP/1.1\r\nHost: vault\r\nAuthorization: Bearer \(key)\r\n\r\n"
            // The wallet routes are on the public listener only (this key lacks the wallet scope).
            #expect(try await request(publicPort, wallets) == 403)
            #expect(try await request(detokenizePort, wallets) == 404)
            #expect(try await request(networkPort, wallets) == 404)
            // The network's routes are on the network listener only, and need the network scope.
            let authorization = "POST /v1/network/authorizations HTTP/1.1\r\nHost: vault\r\nContent-Length: 2\r\n\r\n{}"
            #expect(try await request(networkPort, authorization) == 401)
            #expect(try await request(publicPort, authorization) == 404)
            #expect(try await request(detokenizePort, authorization) == 404)

            // A refused detokenize was audited; after shutdown the head file names the last record.
            await group.triggerGracefulShutdown()
            try await running.value
            // `"VAH1" ‖ u64 BE sequence ‖ mac ‖ head_mac` (docs/CRYPTO.md §11).
            let file = [UInt8](try Data(contentsOf: URL(fileURLWithPath: configuration.paths.auditHeadPath)))
            #expect(file.count == 76 && file.prefix(4).elementsEqual("VAH1".utf8))
            let sequence = Int64(bitPattern: file[4..<12].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
            let last = try #require(try await services.vault.audit.records(after: 0, limit: 10_000).last)
            #expect(last.event.type == "detokenize" && sequence == last.sequence)
        }
    }

    @Test(
        "vault serve's wiring issues virtual cards through the vault: the configured BIN, a token only, no PAN in wallet.db"
    )
    func issuesThroughTheVault() async throws {
        try await Self.withConfiguration { base in
            var configuration = base
            configuration.issuingBIN = "99999912"
            configuration.issuingPANLength = 19
            let services = try await VaultApplication.build(configuration, logger: TestLog.quiet())
            let wallet = try await services.wallets.createWallet(
                ownerRef: "alice", currency: "EUR", idempotency: try IdempotencyKey(owner: "o", key: "w-1"))
            var cards = [VirtualCard]()
            for index in 0..<20 {
                cards.append(
                    try await services.virtualCards.issue(
                        to: wallet.id, NewVirtualCard(expiresInMonths: 1 + index),
                        idempotency: try IdempotencyKey(owner: "o", key: "vc-\(index)")))
            }
            #expect(Set(cards.map(\.token)).count == 20)
            for card in cards {
                #expect(card.bin == "999999", "the first six digits, as for any card")
                let metadata = try await services.vault.tokens.metadata(of: card.token, for: .wallet(tenant: "default"))
                #expect(metadata.last4 == card.last4)
                #expect((metadata.expMonth, metadata.expYear) == (card.expMonth, card.expYear))
            }
            // wallet.db holds no card number of the BIN (a run of 19 digits from it passing the Luhn
            // check); shorter runs are times and sequence numbers.
            let path = configuration.paths.dataDirectory + "/wallet.db"
            var bytes = [UInt8]()
            for file in [path, path + "-wal"] {
                bytes += FileManager.default.contents(atPath: file).map(Array.init) ?? []
            }
            let panLike = Bytes.runs(in: bytes, minimumLength: 16, where: Bytes.isDigit).filter {
                $0.run.contains("99999912") && TestLuhn.passes($0.run)
            }
            #expect(panLike.isEmpty, "\(panLike.count) Luhn-valid digit runs in wallet.db")
        }
    }

    @Test("a wallet.db that fails the ledger's invariants stops the builder")
    func invariantRefusal() async throws {
        try await Self.withConfiguration { configuration in
            let first = try await VaultApplication.build(configuration, logger: TestLog.quiet())
            _ = try await first.wallets.createWallet(
                ownerRef: "customer-1", currency: "EUR", idempotency: try IdempotencyKey(owner: "o", key: "k-1"))
            let ledger = try #require(first.wallets.ledger as? SQLiteLedger)
            try await ledger.pool.write { db in
                try db.execute(sql: "UPDATE ledger_accounts SET debits_posted = debits_posted + 7")
            }
            let error = await #expect(throws: LedgerError.self) {
                _ = try await VaultApplication.build(configuration, logger: TestLog.quiet())
            }
            #expect(error?.code == .invariantViolated)
        }
    }
}
