import Foundation
import Testing
import VaultTestSupport

/// The `--json` outputs scripts rely on: their keys and types are pinned here.
@Suite("JSON interfaces", .timeLimit(.minutes(10)))
struct JSONInterfaceTests {
    static let keyStates: Set<String> = ["active", "decrypt_only", "retired"]

    /// Checks one `keys status --json` output against the documented shape and returns it decoded.
    static func checkStatusShape(_ result: CommandResult) throws -> KeyStatus {
        let object = try JSONCoding.object(result.stdout)
        // `cryptoperiod_days` echoes the configured period; anything else is a change of interface.
        let keys = Set(object.keys)
        let expected: Set = [
            "active_version", "versions", "cryptoperiod_overdue", "cryptoperiod_days", "active_root_version",
            "root_versions", "card_verification_keys",
        ]
        #expect(keys == expected, "\(result)")
        for key in object["card_verification_keys"] as? [[String: Any]] ?? [] {
            #expect(Set(key.keys) == ["version", "created_at", "issued_cards"], "\(result)")
        }
        for version in object["versions"] as? [[String: Any]] ?? [] {
            #expect(Set(version.keys) == ["version", "state", "created_at", "records"], "\(result)")
            #expect(keyStates.contains(version["state"] as? String ?? ""), "\(result)")
        }
        for root in object["root_versions"] as? [[String: Any]] ?? [] {
            #expect(Set(root.keys) == ["version", "created_at", "fingerprints", "credential_hashes"], "\(result)")
        }
        // Strict types: Int for versions and counts, Bool for the flag, ISO 8601 for dates.
        return try JSONCoding.decoder.decode(KeyStatus.self, from: Data(result.stdout.utf8))
    }

    @Test("keys rotate, rewrap and status --json")
    func keysJSON() async throws {
        try await withSandbox { sandbox in
            let initial = try Self.checkStatusShape(try await sandbox.vaultSucceeding(["keys", "status", "--json"]))
            #expect(initial.activeVersion == 1)
            #expect(initial.versions.map(\.version) == [1])
            #expect(initial.version(1)?.state == "active")
            #expect(initial.version(1)?.records == 0)
            #expect(initial.cryptoperiodOverdue == false)
            #expect(abs(initial.version(1)?.createdAt.timeIntervalSinceNow ?? .infinity) < 600)

            _ = try await sandbox.addRecords(3)
            #expect(try await sandbox.keyStatus().records(under: 1) == 3)

            let rotate = try await sandbox.vaultSucceeding(["keys", "rotate", "--json"])
            let rotated = try JSONCoding.object(rotate.stdout)
            #expect(Set(rotated.keys) == ["active_version"], "\(rotate)")
            #expect(rotated["active_version"] as? Int == 2, "\(rotate)")

            let rewrap = try await sandbox.vaultSucceeding(["keys", "rewrap", "--json"])
            let rewrapped = try JSONCoding.object(rewrap.stdout)
            #expect(Set(rewrapped.keys) == ["rewrapped"], "\(rewrap)")
            #expect(rewrapped["rewrapped"] as? Int == 3, "\(rewrap)")
            #expect(rewrap.stderr.isEmpty, "no progress bar when not on a terminal: \(rewrap)")

            let status = try Self.checkStatusShape(try await sandbox.vaultSucceeding(["keys", "status", "--json"]))
            #expect(status.activeVersion == 2)
            #expect(status.versions.map(\.version) == [1, 2])
            #expect(status.version(1)?.state == "decrypt_only")
            #expect(status.version(1)?.records == 0)
            #expect(status.version(2)?.state == "active")
            #expect(status.version(2)?.records == 3)

            let again = try await sandbox.vaultSucceeding(["keys", "rewrap", "--json"])
            #expect(try JSONCoding.object(again.stdout)["rewrapped"] as? Int == 0, "\(again)")

            // No card issued yet: no card-verification key until rotate-cvk adds v1, then v2.
            let before = try await sandbox.vaultSucceeding(["keys", "status", "--json"])
            #expect((try JSONCoding.object(before.stdout)["card_verification_keys"] as? [Any])?.isEmpty == true)
            for version in [1, 2] {
                let cvk = try await sandbox.vaultSucceeding(["keys", "rotate-cvk", "--json"])
                #expect(try JSONCoding.object(cvk.stdout) as NSDictionary == ["cvk_version": version], "\(cvk)")
            }
            let withKeys = try await sandbox.vaultSucceeding(["keys", "status", "--json"])
            _ = try Self.checkStatusShape(withKeys)
            let listed = try JSONCoding.object(withKeys.stdout)["card_verification_keys"] as? [[String: Any]] ?? []
            #expect(
                listed.map { $0["version"] as? Int } == [1, 2] && listed.allSatisfy { $0["issued_cards"] as? Int == 0 })
        }
    }

    @Test("finding 8: keys rotate-root --json, then rewrap moves every fingerprint; the log verifies")
    func rotateRootJSON() async throws {
        try await withSandbox { sandbox in
            _ = try await sandbox.addRecords(3)
            let rotate = try await sandbox.vaultSucceeding(["keys", "rotate-root", "--json"])
            let rotated = try JSONCoding.object(rotate.stdout)
            #expect(Set(rotated.keys) == ["root_version", "active_version", "resealed_credentials"], "\(rotate)")
            #expect(rotated["root_version"] as? Int == 1 && rotated["active_version"] as? Int == 2, "\(rotate)")
            func roots() async throws -> [[String: Any]] {
                let status = try await sandbox.vaultSucceeding(["keys", "status", "--json"])
                _ = try Self.checkStatusShape(status)
                let object = try JSONCoding.object(status.stdout)
                #expect(object["active_root_version"] as? Int == 1, "\(status)")
                return object["root_versions"] as? [[String: Any]] ?? []
            }
            #expect(try await roots().map { $0["fingerprints"] as? Int } == [3, 0])
            let rewrap = try await sandbox.vaultSucceeding(["keys", "rewrap", "--json"])
            #expect(try JSONCoding.object(rewrap.stdout)["rewrapped"] as? Int == 3, "\(rewrap)")
            #expect(try await roots().map { $0["fingerprints"] as? Int } == [0, 3])
            let verify = try await sandbox.vaultSucceeding(["audit", "verify", "--json"])
            #expect(try JSONCoding.object(verify.stdout)["ok"] as? Bool == true, "\(verify)")
        }
    }

    @Test("credentials create --json prints id and secret; list --json never shows a secret")
    func credentialsJSON() async throws {
        try await withSandbox { sandbox in
            var created = [CreatedCredential]()
            for (name, scope) in [("frontend", "tokenize"), ("reader", "tokens:read")] {
                let result = try await sandbox.vaultSucceeding(
                    ["credentials", "create", "--name", name, "--scope", scope, "--json"])
                let object = try JSONCoding.object(result.stdout)
                #expect(Set(object.keys) == ["id", "secret"], "\(result)")
                let credential = try JSONCoding.decoder.decode(CreatedCredential.self, from: Data(result.stdout.utf8))
                #expect(credential.secret.hasPrefix("vk_\(credential.id)_"), "\(result)")
                created.append(credential)
            }

            let list = try await sandbox.vaultSucceeding(["credentials", "list", "--json"])
            let entries = try JSONCoding.array(list.stdout)
            #expect(entries.compactMap { $0["id"] as? String } == created.map(\.id), "\(list)")
            #expect(entries.compactMap { $0["name"] as? String } == ["frontend", "reader"])
            for entry in entries {
                #expect(
                    Set(entry.keys).isSubset(of: [
                        "id", "name", "tenant", "scopes", "purposes", "created_at", "revoked_at",
                    ]))
            }
            for credential in created {
                let secretPart = String(credential.secret.split(separator: "_", maxSplits: 2).last ?? "")
                #expect(!list.stdout.contains(secretPart), "credentials list shows a secret: \(list)")
            }
            #expect(!list.stdout.contains("secret"), "\(list)")
        }
    }
}
