import Foundation
import Testing

/// Top-ups end to end, the way they run in production: `vault serve` and `vault acquirer-sim`
/// as two processes, the card sealed to the acquirer's key, the CVV used once, the wallet
/// credited at most once across a timeout and its retry, and no card data in `wallet.db`.
@Suite("Wallet top-ups through a real acquirer process", .timeLimit(.minutes(10)))
struct WalletTopUpTests {
    struct Client {
        let api: APIClient
        let key: String

        func call(
            _ method: String, _ path: String, _ body: [String: Any]? = nil, idempotencyKey: String? = nil
        ) async throws -> (status: Int, json: [String: Any], raw: Data) {
            let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
            let reply = try await api.send(
                method, path, body: data, key: key,
                headers: idempotencyKey.map { ["Idempotency-Key": $0] } ?? [:])
            let json = (try? JSONSerialization.jsonObject(with: reply.body)) as? [String: Any] ?? [:]
            return (reply.status, json, reply.body)
        }

        func balance(_ wallet: String) async throws -> Int {
            let reply = try await call("GET", "/v1/wallets/\(wallet)")
            return try #require((reply.json["balances"] as? [String: Any])?["posted"] as? Int)
        }

        func cvvHeld(_ token: String) async throws -> Bool {
            try #require(try await call("GET", "/v1/tokens/\(token)").json["cvv_held"] as? Bool)
        }
    }

    static func errorCode(_ json: [String: Any]) -> String? { (json["error"] as? [String: Any])?["code"] as? String }

    /// How many approvals the simulator has logged (one `authorization` line each, at `info`).
    static func approvals(_ acquirer: AcquirerProcess) -> Int {
        acquirer.stderr.split(separator: "\n").filter { line in
            line.hasSuffix("] authorization") && line.contains("status=approved")
        }.count
    }

    @Test("approved, replayed, declined, timed out then retried once, unavailable; CVV used once; no card data kept")
    func topUps() async throws {
        try await withSandbox { sandbox in
            // The gateway's timeout (the default, 5 s) is generous for a loaded machine, and the
            // slow amount's delay (the simulator's default, 10 s) well beyond it.
            let acquirer = try await AcquirerProcess.start(
                sandbox, logLevel: "info", extraArguments: ["--slow-delay", "10"])
            defer { acquirer.stop() }
            let server = try await ServerProcess.start(
                sandbox,
                extraArguments: [
                    "--acquirer-url", acquirer.url, "--acquirer-key", acquirer.publicKeyPath, "--acquirer-timeout",
                    "5",
                ])
            defer { server.stop() }
            let credential = try await sandbox.createCredential(
                name: "wallet", scopes: ["tokenize", "tokens:read", "wallet"])
            let client = Client(api: APIClient(server), key: credential.secret)

            let tokenized = try await client.call(
                "POST", "/v1/tokens", ["pan": "4242424242424242", "exp_month": 12, "exp_year": 2039, "cvv": "737"])
            let token = try #require(tokenized.json["token"] as? String, "\(tokenized)")
            #expect(try await client.cvvHeld(token))
            let created = try await client.call(
                "POST", "/v1/wallets", ["owner_ref": "cust-1", "currency": "EUR"], idempotencyKey: "w1")
            #expect(created.status == 201)
            let wallet = try #require(created.json["id"] as? String)
            let card = try #require(
                try await client.call("POST", "/v1/wallets/\(wallet)/cards", ["token": token], idempotencyKey: "c1")
                    .json["id"] as? String)

            // Approved: the CVV goes to the acquirer once and is gone from the vault afterwards.
            let body: [String: Any] = ["card_id": card, "amount": 2500, "currency": "EUR"]
            let approved = try await client.call(
                "POST", "/v1/wallets/\(wallet)/top_ups", body, idempotencyKey: "t1")
            #expect(approved.status == 201, "\(approved)")
            #expect(approved.json["status"] as? String == "approved")
            #expect((approved.json["auth_code"] as? String)?.count == 6)
            #expect(try await client.balance(wallet) == 2500)
            #expect(try await client.cvvHeld(token) == false, "the CVV is deleted after its first use")
            let replay = try await client.call("POST", "/v1/wallets/\(wallet)/top_ups", body, idempotencyKey: "t1")
            #expect(replay.status == 201 && replay.raw == approved.raw, "a replay returns the first response")
            #expect(try await client.balance(wallet) == 2500)

            // Charged again without a CVV (card on file): approved.
            let again = try await client.call(
                "POST", "/v1/wallets/\(wallet)/top_ups", ["card_id": card, "amount": 1000, "currency": "EUR"],
                idempotencyKey: "t2")
            #expect(again.json["status"] as? String == "approved", "\(again)")
            #expect(try await client.balance(wallet) == 3500)

            // Declined by rule: nothing booked.
            let declinedToken = try #require(
                try await client.call(
                    "POST", "/v1/tokens", ["pan": "4000000000000002", "exp_month": 12, "exp_year": 2039]
                ).json["token"] as? String)
            let declinedCard = try #require(
                try await client.call(
                    "POST", "/v1/wallets/\(wallet)/cards", ["token": declinedToken], idempotencyKey: "c2"
                ).json["id"] as? String)
            let declined = try await client.call(
                "POST", "/v1/wallets/\(wallet)/top_ups", ["card_id": declinedCard, "amount": 700, "currency": "EUR"],
                idempotencyKey: "t3")
            #expect(declined.status == 201, "\(declined)")
            #expect(declined.json["status"] as? String == "declined")
            #expect(declined.json["decline_code"] as? String == "do_not_honor")
            #expect(try await client.balance(wallet) == 3500)

            // Timeout: 504, nothing booked; the retry with the same key sends the same reference,
            // which the acquirer has approved meanwhile: booked exactly once.
            let approvedBefore = Self.approvals(acquirer)
            try #require(approvedBefore == 2, "the simulator's log:\n\(acquirer.stderr)")
            let slowBody: [String: Any] = ["card_id": card, "amount": 40800, "currency": "EUR"]
            let timedOut = try await client.call(
                "POST", "/v1/wallets/\(wallet)/top_ups", slowBody, idempotencyKey: "t4")
            #expect(timedOut.status == 504, "\(timedOut)")
            #expect(Self.errorCode(timedOut.json) == "acquirer_timeout")
            #expect(try await client.balance(wallet) == 3500)
            // The retry goes once the acquirer has approved the charge (after its delay): waited
            // for on the simulator's log, not slept for.
            let approvedMeanwhile = try await acquirer.child.waitFor {
                Self.approvals(acquirer) > approvedBefore ? true : nil
            }
            try #require(approvedMeanwhile == true, "the acquirer exited:\n\(acquirer.stderr)")
            let retried = try await client.call(
                "POST", "/v1/wallets/\(wallet)/top_ups", slowBody, idempotencyKey: "t4")
            #expect(retried.status == 201 && retried.json["status"] as? String == "approved", "\(retried)")
            let retriedAgain = try await client.call(
                "POST", "/v1/wallets/\(wallet)/top_ups", slowBody, idempotencyKey: "t4")
            #expect(retriedAgain.raw == retried.raw)
            #expect(try await client.balance(wallet) == 3500 + 40800, "credited once")

            // The acquirer answers 503: a retryable 502, nothing booked.
            let unavailable = try await client.call(
                "POST", "/v1/wallets/\(wallet)/top_ups", ["card_id": card, "amount": 50300, "currency": "EUR"],
                idempotencyKey: "t5")
            #expect(unavailable.status == 502, "\(unavailable)")
            #expect(Self.errorCode(unavailable.json) == "acquirer_unavailable")
            #expect(try await client.balance(wallet) == 3500 + 40800)

            let statement = try await client.call("GET", "/v1/wallets/\(wallet)/transactions")
            let entries = try #require(statement.json["transactions"] as? [[String: Any]])
            #expect(entries.map { $0["type"] as? String } == ["top_up", "top_up", "top_up"])
            #expect(entries.map { $0["amount"] as? Int } == [2500, 1000, 40800])

            server.stop()
            acquirer.stop()
            // Neither the wallet's database nor the acquirer's records hold a PAN.
            for path in [sandbox.dataDir + "/wallet.db", sandbox.dataDir + "/wallet.db-wal", acquirer.databasePath] {
                guard let bytes = FileManager.default.contents(atPath: path) else { continue }
                for pan in ["4242424242424242", "4000000000000002"] {
                    #expect(bytes.range(of: Data(pan.utf8)) == nil, "\(path) holds a PAN")
                }
            }
            #expect(FileManager.default.fileExists(atPath: sandbox.dataDir + "/wallet.db"))
            // Every authorization was audited (purpose authorization) and the chain verifies.
            try await sandbox.vaultSucceeding(["audit", "verify"])
            let audit = try await sandbox.vaultSucceeding(["audit", "list", "--json", "--limit", "1000"])
            #expect(audit.stdout.components(separatedBy: "\"authorization\"").count - 1 >= 5, "\(audit.stdout)")
        }
    }

    @Test("serve refuses an acquirer URL without its key, and a key file that is not 32 bytes")
    func acquirerConfiguration() async throws {
        try await withSandbox { sandbox in
            let missingKey = try await sandbox.vault(["serve", "--acquirer-url", "http://127.0.0.1:9"])
            #expect(!missingKey.succeeded)
            #expect(missingKey.stderr.contains("--acquirer-key"), "\(missingKey)")
            let badKey = sandbox.path("bad.pub")
            FileManager.default.createFile(atPath: badKey, contents: Data(repeating: 1, count: 5))
            let wrongSize = try await sandbox.vault([
                "serve", "--public-port", "0", "--detokenize-port", "0", "--network-port", "0", "--acquirer-url",
                "http://127.0.0.1:9",
                "--acquirer-key", badKey,
            ])
            #expect(!wrongSize.succeeded)
            #expect(wrongSize.stderr.contains("32"), "\(wrongSize)")
        }
    }
}
