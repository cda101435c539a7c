import Foundation
import Testing
import VaultTestSupport

@Suite("vault keys retire", .timeLimit(.minutes(10)))
struct RetireTests {
    @Test("refuses while records use the version, succeeds after rewrap; never retires the active key")
    func retireLifecycle() async throws {
        try await withSandbox { sandbox in
            _ = try await sandbox.addRecords(5)
            #expect(
                try JSONCoding.object(try await sandbox.vaultSucceeding(["keys", "rotate", "--json"]).stdout)[
                    "active_version"] as? Int == 2)

            let inUse = try await sandbox.vault(["keys", "retire", "--version", "1"])
            #expect(inUse.refused, "\(inUse)")
            #expect(inUse.stderr.contains("5 record"), "the refusal should say how many records use v1: \(inUse)")
            #expect(inUse.stderr.contains("rewrap"), "the refusal should point to `vault keys rewrap`: \(inUse)")
            let kept = try await sandbox.keyStatus()
            #expect(kept.version(1)?.state == "decrypt_only")
            #expect(kept.version(1)?.records == 5)

            let active = try await sandbox.vault(["keys", "retire", "--version", "2"])
            #expect(active.refused, "\(active)")
            #expect(active.stderr.contains("active"), "\(active)")

            try await sandbox.vaultSucceeding(["keys", "rewrap"])
            let retire = try await sandbox.vault(["keys", "retire", "--version", "1"])
            #expect(retire.succeeded, "\(retire)")

            let status = try await sandbox.keyStatus()
            #expect(status.version(1)?.state == "retired")
            #expect(status.version(1)?.records == 0)
            #expect(status.version(2)?.state == "active")
            #expect(status.version(2)?.records == 5)

            let twice = try await sandbox.vault(["keys", "retire", "--version", "1"])
            #expect(twice.refused, "\(twice)")
            let stillActive = try await sandbox.vault(["keys", "retire", "--version", "2"])
            #expect(stillActive.refused, "\(stillActive)")
            #expect(try await sandbox.keyStatus().version(2)?.state == "active")
        }
    }
}
