import Foundation
import Testing
import VaultTestSupport

/// A temporary folder holding one vault (`data/`, `Keys/`) and whatever else a test puts there;
/// every command runs with `--data-dir` and `--keys-dir` pointing into it.
final class Sandbox: Sendable {
    let root: String

    init() throws {
        root = try makeTemporaryDirectory("vault-process-tests")
    }

    var dataDir: String { root + "/data" }
    var keysDir: String { root + "/Keys" }
    /// Where the vault looks for the master key (`<keys-dir>/master.key`).
    var masterKeyPath: String { keysDir + "/master.key" }
    var databasePath: String { dataDir + "/vault.db" }
    /// The options every command takes, pointing into the sandbox.
    var storageArguments: [String] { ["--data-dir", dataDir, "--keys-dir", keysDir] }

    /// A path in the sandbox, outside the data and key folders.
    func path(_ name: String) -> String { root + "/" + name }

    /// Runs `vault <arguments> --data-dir … --keys-dir …` in the sandbox.
    func vault(_ arguments: [String], timeout: Duration = ChildProcess.hangTimeout) async throws -> CommandResult {
        try await run(arguments + storageArguments, cwd: root, timeout: timeout)
    }

    /// Runs a command that must succeed, and returns its result.
    @discardableResult
    func vaultSucceeding(
        _ arguments: [String], timeout: Duration = ChildProcess.hangTimeout
    ) async throws -> CommandResult {
        let result = try await vault(arguments, timeout: timeout)
        guard result.succeeded else { throw TestFailure("expected success from \(result)") }
        return result
    }

    /// Runs a command that prints JSON and decodes it.
    func vaultJSON<T: Decodable>(_ type: T.Type, _ arguments: [String]) async throws -> T {
        let result = try await vaultSucceeding(arguments)
        do {
            return try JSONCoding.decoder.decode(T.self, from: Data(result.stdout.utf8))
        } catch {
            throw TestFailure("cannot decode \(T.self) (\(error)) from \(result)")
        }
    }

    /// `vault keys init`.
    func initialize() async throws {
        try await vaultSucceeding(["keys", "init"])
    }

    /// `vault credentials create --json`: a new API key.
    func createCredential(
        name: String = "tests", scopes: [String] = ["tokenize", "tokens:read"]
    ) async throws -> CreatedCredential {
        try await vaultJSON(
            CreatedCredential.self,
            ["credentials", "create", "--name", name, "--json"] + scopes.flatMap { ["--scope", $0] })
    }

    /// `vault keys status --json`.
    func keyStatus() async throws -> KeyStatus {
        try await vaultJSON(KeyStatus.self, ["keys", "status", "--json"])
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// Runs `body` with a fresh sandbox (initialised with `vault keys init` unless told otherwise),
/// removed afterwards.
func withSandbox<R>(initialized: Bool = true, _ body: (Sandbox) async throws -> R) async throws -> R {
    let sandbox = try Sandbox()
    defer { sandbox.remove() }
    if initialized { try await sandbox.initialize() }
    return try await body(sandbox)
}

/// `vault credentials create --json`.
struct CreatedCredential: Decodable, Sendable {
    var id: String
    var secret: String
}

/// `vault keys status --json`.
struct KeyStatus: Decodable, Sendable {
    struct Version: Decodable, Sendable {
        var version: Int
        var state: String
        var createdAt: Date
        var records: Int
    }

    var activeVersion: Int
    var versions: [Version]
    var cryptoperiodOverdue: Bool

    func version(_ number: Int) -> Version? { versions.first { $0.version == number } }

    /// Records (cards and CVVs) encrypted under `version`; 0 if the version is unknown.
    func records(under version: Int) -> Int { self.version(version)?.records ?? 0 }

    /// Records under any version other than the active one.
    var recordsUnderOlderVersions: Int {
        versions.filter { $0.version != activeVersion }.reduce(0) { $0 + $1.records }
    }
}
