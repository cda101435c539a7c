import Foundation
import Testing
import VaultTestSupport

/// Every command refuses a bad master key with an error naming the file and the problem, and
/// leaves vault.db as it was (DESIGN §3).
@Suite("Master key problems", .timeLimit(.minutes(10)))
struct MasterKeyRefusalTests {
    enum Problem: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case missing
        case wrongSize
        case readableByOthers
        case wrongKey

        var testDescription: String { rawValue }

        /// Words the error must contain.
        var expectedMessage: String {
            switch self {
            case .missing: "not found"
            case .wrongSize: "31 bytes"
            case .readableByOthers: "mode 644"
            case .wrongKey: "does not open"
            }
        }

        /// Breaks the sandbox's master key in this way.
        func apply(to sandbox: Sandbox) throws {
            let path = sandbox.masterKeyPath
            switch self {
            case .missing:
                try FileManager.default.removeItem(atPath: path)
            case .wrongSize:
                let key = try Data(contentsOf: URL(fileURLWithPath: path))
                try key.prefix(31).write(to: URL(fileURLWithPath: path))
            case .readableByOthers:
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
            case .wrongKey:
                try FileManager.default.removeItem(atPath: path)
                try writeKeyFile(randomKey(), to: path)
            }
        }
    }

    static func randomKey() -> Data { Data((0..<32).map { _ in UInt8.random(in: 0...255) }) }

    /// Writes a key file with mode 0600.
    static func writeKeyFile(_ key: Data, to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: key, attributes: [.posixPermissions: 0o600]) else {
            throw TestFailure("cannot write \(path)")
        }
    }

    @Test("every command refuses and leaves vault.db unchanged", arguments: Problem.allCases)
    func everyCommandRefuses(_ problem: Problem) async throws {
        try await withSandbox { sandbox in
            // A valid replacement key, so that rotate-master fails on the current key only.
            let newKey = sandbox.path("new-master.key")
            try Self.writeKeyFile(Self.randomKey(), to: newKey)
            try problem.apply(to: sandbox)
            let before = try Data(contentsOf: URL(fileURLWithPath: sandbox.databasePath))

            let commands: [[String]] = [
                ["serve", "--public-port", "0"],
                ["keys", "rotate"],
                ["keys", "rewrap"],
                ["keys", "status"],
                ["keys", "retire", "--version", "1"],
                ["keys", "rotate-master", "--new-master-key", newKey],
                ["credentials", "create", "--name", "a", "--scope", "tokenize"],
                ["credentials", "list"],
                ["credentials", "revoke", "abc"],
            ]
            for command in commands {
                // A refusal comes at once; the bound only ends a `serve` that wrongly started.
                let result = try await sandbox.vault(command, timeout: .seconds(120))
                #expect(result.refused, "\(result)")
                #expect(
                    result.stderr.contains(sandbox.masterKeyPath), "the error does not name the key file: \(result)")
                #expect(
                    result.stderr.contains(problem.expectedMessage),
                    "the error does not say “\(problem.expectedMessage)”: \(result)")
                #expect(!result.stdout.contains(ServerProcess.readyPrefix), "the server started: \(result)")
            }

            let after = try Data(contentsOf: URL(fileURLWithPath: sandbox.databasePath))
            let unchanged = after == before
            #expect(unchanged, "vault.db changed (\(before.count) → \(after.count) bytes)")
            #expect(FileManager.default.fileExists(atPath: newKey), "rotate-master consumed the new key")
            if problem == .missing {
                #expect(!FileManager.default.fileExists(atPath: sandbox.masterKeyPath), "a master key was created")
            }
        }
    }
}
