import Foundation
import Testing

@Suite("vault keys init", .timeLimit(.minutes(10)))
struct KeysInitTests {
    @Test("creates the master key (0600, 32 bytes) and vault.db in the default folders; a rerun is a no-op")
    func createsKeysAndDatabase() async throws {
        try await withSandbox(initialized: false) { sandbox in
            // No --data-dir/--keys-dir: the defaults ./data and ./Keys, relative to the working folder.
            let first = try await run(["keys", "init"], cwd: sandbox.root)
            #expect(first.succeeded, "\(first)")
            let attributes = try FileManager.default.attributesOfItem(atPath: sandbox.masterKeyPath)
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
            #expect(mode == 0o600, "master.key has mode \(String(mode, radix: 8))")
            #expect((attributes[.size] as? NSNumber)?.intValue == 32)
            #expect(FileManager.default.fileExists(atPath: sandbox.databasePath))
            let key = try Data(contentsOf: URL(fileURLWithPath: sandbox.masterKeyPath))

            let second = try await run(["keys", "init"], cwd: sandbox.root)
            #expect(second.succeeded, "\(second)")
            #expect(second.stdout.contains("both exist"), "\(second)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: sandbox.masterKeyPath)) == key, "init overwrote the key")
            #expect(try await sandbox.keyStatus().activeVersion == 1)
        }
    }

    @Test("refuses when vault.db exists but the master key is missing, and creates no new key")
    func refusesWithoutMasterKey() async throws {
        try await withSandbox { sandbox in
            try FileManager.default.removeItem(atPath: sandbox.masterKeyPath)
            let database = try Data(contentsOf: URL(fileURLWithPath: sandbox.databasePath))

            let result = try await sandbox.vault(["keys", "init"])
            #expect(result.refused, "\(result)")
            #expect(result.stderr.contains(sandbox.masterKeyPath), "\(result)")
            #expect(result.stderr.contains("not found"), "\(result)")
            #expect(!FileManager.default.fileExists(atPath: sandbox.masterKeyPath), "init created a new master key")
            let unchanged = try Data(contentsOf: URL(fileURLWithPath: sandbox.databasePath)) == database
            #expect(unchanged, "vault.db changed")
        }
    }
}
