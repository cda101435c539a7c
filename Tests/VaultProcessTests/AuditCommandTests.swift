import Foundation
import Testing
import VaultTestSupport

/// `vault audit verify [--json]` and `vault audit list [--since] [--actor] [--token] [--after]
/// [--limit] [--json]`, run as an operator would, against a vault tampered with from outside.
@Suite("vault audit", .timeLimit(.minutes(10)))
struct AuditCommandTests {
    /// `vault audit list --json <filters>`: one page.
    static func list(_ sandbox: Sandbox, _ filters: [String] = []) async throws -> AuditPageReply {
        let result = try await sandbox.vaultSucceeding(["audit", "list", "--json"] + filters)
        let object = try JSONCoding.object(result.stdout)
        #expect(Set(object.keys) == ["records", "next_after"], "\(result)")
        return try JSONCoding.decoder.decode(AuditPageReply.self, from: Data(result.stdout.utf8))
    }

    /// Every record matching `filters`, page by page with `--limit` and `--after next_after`.
    static func listAll(
        _ sandbox: Sandbox, _ filters: [String] = [], pageSize: Int
    ) async throws -> (
        records: [AuditRecordReply], pages: Int
    ) {
        var records = [AuditRecordReply]()
        var after: Int64 = 0
        var pages = 0
        while true {
            let page = try await list(sandbox, filters + ["--limit", String(pageSize), "--after", String(after)])
            pages += 1
            #expect(page.records.count <= pageSize)
            records += page.records
            guard let next = page.nextAfter else { break }
            #expect(next == page.records.last?.sequence, "next_after is the last sequence of the page")
            after = next
            if pages > 100 { throw TestFailure("pagination does not end") }
        }
        return (records, pages)
    }

    /// `vault audit verify --json`: the result and the decoded object.
    static func verify(_ sandbox: Sandbox) async throws -> (CommandResult, [String: Any]) {
        let result = try await sandbox.vault(["audit", "verify", "--json"])
        #expect(result.exitedNormally && !result.timedOut, "\(result)")
        return (result, try JSONCoding.object(result.stdout))
    }

    /// Runs a Python `sqlite3` script against the sandbox's `vault.db` (no vault process open).
    static func tamper(_ sandbox: Sandbox, _ statements: String) async throws {
        let script = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            db.executescript(sys.argv[2])
            db.commit()
            db.close()
            """
        let result = try await runProcess(
            "/usr/bin/env", ["python3", "-c", script, sandbox.databasePath, statements], cwd: sandbox.root)
        guard result.succeeded else { throw TestFailure("tampering failed: \(result)") }
    }

    // MARK: - verify

    @Test("verify --json on a fresh vault: exit 0, {\"ok\":true,\"records\":N}; the verification is audited")
    func verifyFreshVault() async throws {
        try await withSandbox { sandbox in
            let credential = try await sandbox.createCredential(name: "frontend", scopes: ["tokenize"])
            let (result, object) = try await Self.verify(sandbox)
            #expect(result.status == 0, "\(result)")
            #expect(Set(object.keys) == ["ok", "records"], "\(result)")
            #expect(object["ok"] as? Bool == true, "\(result)")
            #expect(object["records"] as? Int == 3, "\(result)")

            let page = try await Self.list(sandbox)
            #expect(page.records.map(\.type) == ["keys.init_master", "keys.init", "credential.create", "audit.verify"])
            #expect(page.records.map(\.sequence) == [1, 2, 3, 4])
            #expect(page.nextAfter == nil)
            #expect(
                page.records.allSatisfy { $0.actor == "admin:cli" && $0.origin == "cli" && $0.outcome == "success" })
            #expect(page.records[1].objects == ["root_key", "data_key:1"])
            #expect(page.records[2].objects == ["credential:\(credential.id)"])
            let verification = try #require(page.records.last)
            #expect(verification.detail == "records=3")
            #expect(abs(verification.time.timeIntervalSinceNow) < 600)

            // The next verification counts the previous one.
            let (again, second) = try await Self.verify(sandbox)
            #expect(again.status == 0 && second["records"] as? Int == 4, "\(again)")

            // Without --json: one human line.
            let human = try await sandbox.vaultSucceeding(["audit", "verify"])
            #expect(human.stdout.contains("intact") && human.stdout.contains("5 record"), "\(human)")
        }
    }

    @Test("verify --json on a tampered log: exit 1, {\"ok\":false,\"first_bad_record\":K,\"reason\":…}")
    func verifyTamperedRecord() async throws {
        try await withSandbox { sandbox in
            _ = try await sandbox.createCredential(name: "one")
            _ = try await sandbox.createCredential(name: "two")
            try await Self.tamper(sandbox, "UPDATE audit_log SET actor = 'someone-else' WHERE sequence = 3;")
            let (result, object) = try await Self.verify(sandbox)
            #expect(result.status == 1, "\(result)")
            #expect(object["ok"] as? Bool == false, "\(result)")
            #expect(object["first_bad_record"] as? Int == 3, "\(result)")
            #expect((object["reason"] as? String)?.isEmpty == false, "\(result)")
            #expect(Set(object.keys).isSubset(of: ["ok", "records", "first_bad_record", "reason"]), "\(result)")

            // The failed verification is itself recorded (after the damage, which stays named).
            let page = try await Self.list(sandbox, ["--actor", "admin:cli"])
            let last = try #require(page.records.last)
            #expect(last.type == "audit.verify" && last.outcome == "failure", "\(page.records)")
            #expect(last.detail == "first_bad_record=3")
            let (_, again) = try await Self.verify(sandbox)
            #expect(again["first_bad_record"] as? Int == 3)

            // The human form says so too.
            let human = try await sandbox.vault(["audit", "verify"])
            #expect(human.status == 1 && human.stdout.contains("NOT intact"), "\(human)")
        }
    }

    /// Tampering that leaves the log unable to take the verification's own record (the head row
    /// gone or rewound): the result must still be printed, with exit 1.
    @Test(
        "verify --json reports a cut tail, a deleted or rewound head and a missing head file",
        arguments: [
            ("tail cut", "DELETE FROM audit_log WHERE sequence > 2;", 3),
            ("tail cut, head deleted", "DELETE FROM audit_log WHERE sequence > 2; DELETE FROM audit_head;", 3),
            ("head deleted", "DELETE FROM audit_head;", 5),
            (
                "head rewound",
                "UPDATE audit_head SET sequence = 2, mac = (SELECT mac FROM audit_log WHERE sequence = 2);", 5
            ),
            ("record deleted", "DELETE FROM audit_log WHERE sequence = 2;", 2),
            (
                "records swapped",
                "UPDATE audit_log SET sequence = -1 WHERE sequence = 3; "
                    + "UPDATE audit_log SET sequence = 3 WHERE sequence = 4; "
                    + "UPDATE audit_log SET sequence = 4 WHERE sequence = -1;", 3
            ),
        ])
    func verifyTamperedStructure(_ name: String, _ sql: String, _ firstBad: Int) async throws {
        try await withSandbox { sandbox in
            for index in 0..<2 { _ = try await sandbox.createCredential(name: "key\(index)") }
            try await Self.tamper(sandbox, sql)
            let (result, object) = try await Self.verify(sandbox)
            #expect(result.status == 1, "\(name): \(result)")
            #expect(object["ok"] as? Bool == false, "\(name): \(result)")
            #expect(object["first_bad_record"] as? Int == firstBad, "\(name): \(result)")
            #expect((object["reason"] as? String)?.isEmpty == false, "\(name): \(result)")
        }
    }

    @Test("verify --json with audit.head deleted: exit 1, the reason names the head file")
    func verifyMissingHeadFile() async throws {
        try await withSandbox { sandbox in
            _ = try await sandbox.createCredential()
            let headFile = sandbox.dataDir + "/audit.head"
            let bytes = try Data(contentsOf: URL(fileURLWithPath: headFile))
            #expect(bytes.count == 76 && bytes.prefix(4) == Data("VAH1".utf8))
            try FileManager.default.removeItem(atPath: headFile)
            let (result, object) = try await Self.verify(sandbox)
            #expect(result.status == 1, "\(result)")
            #expect(object["ok"] as? Bool == false, "\(result)")
            #expect((object["reason"] as? String)?.contains("head file") == true, "\(result)")
        }
    }

    /// Issue 8, finding 6: the whole log wiped (both tables and audit.head) reported
    /// "intact: 0 record(s)" with exit 0, and the next append started a fresh chain.
    @Test("finding 6: verify on a wiped log (both tables and audit.head deleted): exit 1, and it stays so")
    func finding6WipedLogFails() async throws {
        try await withSandbox { sandbox in
            _ = try await sandbox.createCredential()
            try await Self.tamper(sandbox, "DELETE FROM audit_log; DELETE FROM audit_head;")
            try FileManager.default.removeItem(atPath: sandbox.dataDir + "/audit.head")
            let (result, object) = try await Self.verify(sandbox)
            #expect(result.status == 1, "\(result)")
            #expect(object["ok"] as? Bool == false && object["records"] as? Int == 0, "\(result)")
            #expect((object["reason"] as? String)?.contains("empty but the vault has a key ring") == true, "\(result)")
            // Nothing restarts the chain: an audited action fails, and verify still says no.
            let create = try await sandbox.vault(["credentials", "create", "--name", "after", "--scope", "tokenize"])
            #expect(create.status == 1, "\(create)")
            let human = try await sandbox.vault(["audit", "verify"])
            #expect(human.status == 1 && human.stdout.contains("NOT intact"), "\(human)")
        }
    }

    // MARK: - list

    /// POSTs `body` to the detokenize listener of `server`; returns the status.
    static func detokenize(
        _ server: ServerProcess, _ client: APIClient, key: String, body: [String: Any]
    ) async throws -> Int {
        let port = try await server.detokenizePort()
        return try await client.send(
            "POST", URL(string: "http://127.0.0.1:\(port)/v1/detokenize")!,
            body: try JSONSerialization.data(withJSONObject: body), key: key
        ).status
    }

    @Test("list filters by actor, token (or object), since, and pages with --limit/--after until next_after is null")
    func listFilters() async throws {
        try await withSandbox { sandbox in
            let tokenizer = try await sandbox.createCredential(name: "frontend", scopes: ["tokenize"])
            let detokenizer = try await sandbox.vaultJSON(
                CreatedCredential.self,
                [
                    "credentials", "create", "--name", "settlement", "--scope", "detokenize", "--purpose", "settlement",
                    "--json",
                ])
            let token = try await withServer(sandbox) { server, client in
                let token = try await client.tokenizeCreated(TestCard.visa.pan, key: tokenizer.secret)
                // Granted, then refused (a purpose the key does not have).
                let granted = try await Self.detokenize(
                    server, client, key: detokenizer.secret,
                    body: ["tokens": [token], "purpose": "settlement", "reference": "batch-1", "reveal": "masked"])
                #expect(granted == 200)
                let refused = try await Self.detokenize(
                    server, client, key: detokenizer.secret,
                    body: ["tokens": [token], "purpose": "chargeback", "reference": "case-7"])
                #expect(refused == 403)
                return token
            }
            try await sandbox.vaultSucceeding(["credentials", "revoke", tokenizer.id])
            _ = try await sandbox.vaultSucceeding(["keys", "rotate"])

            let all = try await Self.list(sandbox).records
            #expect(
                all.map(\.type) == [
                    "keys.init_master", "keys.init", "credential.create", "credential.create", "detokenize",
                    "detokenize", "credential.revoke", "keys.rotate",
                ], "\(all.map(\.type))")
            #expect(all.map(\.sequence) == Array(1...Int64(all.count)))

            // --actor
            let byDetokenizer = try await Self.list(sandbox, ["--actor", detokenizer.id]).records
            #expect(byDetokenizer.map(\.type) == ["detokenize", "detokenize"])
            #expect(byDetokenizer.map(\.outcome) == ["success", "denied"])
            #expect(byDetokenizer.map(\.purpose) == ["settlement", "chargeback"])
            #expect(byDetokenizer.map(\.reference) == ["batch-1", "case-7"])
            #expect(byDetokenizer.allSatisfy { $0.objects == [token] && $0.origin != "cli" })
            let admin = try await Self.list(sandbox, ["--actor", "admin:cli"]).records
            #expect(admin.map(\.sequence) == all.filter { $0.actor == "admin:cli" }.map(\.sequence))
            #expect(admin.count == all.count - 2)
            #expect(try await Self.list(sandbox, ["--actor", "nobody"]).records.isEmpty)

            // --token: a card token, or an object such as credential:<id> or data_key:2.
            #expect(try await Self.list(sandbox, ["--token", token]).records.map(\.sequence) == [5, 6])
            let credentialRecords = try await Self.list(sandbox, ["--token", "credential:\(tokenizer.id)"]).records
            #expect(credentialRecords.map(\.type) == ["credential.create", "credential.revoke"])
            #expect(try await Self.list(sandbox, ["--token", "data_key:2"]).records.map(\.type) == ["keys.rotate"])
            #expect(try await Self.list(sandbox, ["--token", "tok_unknown"]).records.isEmpty)
            // Filters combine.
            let combined = try await Self.list(sandbox, ["--actor", "admin:cli", "--token", token]).records
            #expect(combined.isEmpty)

            // --since (RFC 3339).
            let formatter = ISO8601DateFormatter()
            let hourAgo = formatter.string(from: Date().addingTimeInterval(-3600))
            let inAnHour = formatter.string(from: Date().addingTimeInterval(3600))
            #expect(try await Self.list(sandbox, ["--since", hourAgo]).records.count == all.count)
            #expect(try await Self.list(sandbox, ["--since", inAnHour]).records.isEmpty)
            let middle = all[4].time  // the granted detokenize, at whole-second precision
            let since = try await Self.list(sandbox, ["--since", formatter.string(from: middle)]).records
            #expect(since.contains { $0.sequence == 5 })
            #expect(since.allSatisfy { $0.time >= middle })
            #expect(since.map(\.sequence) == Array(since.first!.sequence...Int64(all.count)))
            let offset = try await Self.list(sandbox, ["--since", "2000-01-01T01:00:00+01:00"]).records
            #expect(offset.count == all.count)

            // Pagination: --limit 2, then --after next_after until it is null.
            let paged = try await Self.listAll(sandbox, pageSize: 2)
            #expect(paged.records.map(\.sequence) == all.map(\.sequence))
            #expect(paged.pages == all.count / 2 + 1)
            let first = try await Self.list(sandbox, ["--limit", "2"])
            #expect(first.records.map(\.sequence) == [1, 2] && first.nextAfter == 2)
            let pagedActor = try await Self.listAll(sandbox, ["--actor", "admin:cli"], pageSize: 4)
            #expect(pagedActor.records.map(\.sequence) == admin.map(\.sequence))
            let last = try await Self.list(sandbox, ["--after", String(all.count - 1), "--limit", "5"])
            #expect(last.records.map(\.sequence) == [Int64(all.count)] && last.nextAfter == nil)

            // Listing never changes the log, and what it shows holds no secret.
            #expect(try await Self.list(sandbox).records.count == all.count)
            let text = try await sandbox.vaultSucceeding(["audit", "list"]).stdout
            #expect(text.split(separator: "\n").count == all.count, "\(text)")
            #expect(!text.contains(tokenizer.secret) && !text.contains(detokenizer.secret))
            #expect(!text.contains(TestCard.visa.pan))
        }
    }

    @Test(
        "list refuses bad options with a clear message",
        arguments: [
            (["--since", "not-a-date"], "--since"),
            (["--since", "2026-01-31"], "--since"),
            (["--limit", "0"], "--limit"),
            (["--limit", "10001"], "--limit"),
            (["--after", "-1"], "--after"),
        ])
    func listRefusesBadOptions(_ options: [String], _ named: String) async throws {
        try await withSandbox { sandbox in
            let result = try await sandbox.vault(["audit", "list", "--json"] + options)
            #expect(result.refused, "\(result)")
            #expect(result.stderr.contains(named), "\(result)")
            #expect(result.stdout.isEmpty, "\(result)")
        }
    }
}
