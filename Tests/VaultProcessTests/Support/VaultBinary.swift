import Foundation
import Testing
import VaultTestSupport

// Process-level helpers: these tests run the real `vault` executable as a child process, the way
// an operator or a deployment script would (only ProcessHardeningTests also calls VaultCLI code
// in process).

/// The package checkout these tests belong to, and the executable `swift build` puts in it.
enum VaultBinary {
    /// The folder holding `Package.swift`, found by walking up from this source file.
    static let repositoryRoot: String = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
                return url.path
            }
            url = url.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().path
    }()

    /// `.build/debug/vault` in the repository root.
    static var path: String { repositoryRoot + "/.build/debug/vault" }

    /// The executable's path, or a clear failure if it has not been built.
    static func require() throws -> String {
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestFailure("the vault executable is missing at \(path); build it with `swift build` first")
        }
        return path
    }

    /// The environment children run with: this process's, minus anything that would point the
    /// vault at a master key other than the sandbox's.
    static var childEnvironment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "VAULT_MASTER_KEY_FILE")
        return environment
    }
}

/// What a finished child process left behind.
struct CommandResult: Sendable, CustomStringConvertible {
    var command: [String]
    /// The exit status, or the signal number if the process was killed.
    var status: Int32
    /// `false` if the process died of a signal (a crash, or the timeout's kill).
    var exitedNormally: Bool
    var timedOut: Bool
    var stdout: String
    var stderr: String
    var duration: Duration

    /// Exit status 0.
    var succeeded: Bool { exitedNormally && !timedOut && status == 0 }
    /// A refusal: a non-zero exit status, not a crash and not a hang.
    var refused: Bool { exitedNormally && !timedOut && status != 0 }

    var description: String {
        let how =
            timedOut
            ? "timed out after \(duration)" : exitedNormally ? "exit status \(status)" : "killed by signal \(status)"
        return "`\(command.joined(separator: " "))`: \(how)\n--- stdout\n\(stdout)--- stderr\n\(stderr)---"
    }
}

/// Runs `executable` with `arguments` in `cwd` and waits for it, killing it as hung after
/// `timeout`.
func runProcess(
    _ executable: String, _ arguments: [String], cwd: String, timeout: Duration = ChildProcess.hangTimeout
) async throws -> CommandResult {
    let base = FileManager.default.temporaryDirectory.path + "/vault-process-run-\(UUID().uuidString)"
    let clock = ContinuousClock()
    let start = clock.now
    let child = try ChildProcess.launch(executable, arguments, cwd: cwd, outputBase: base)
    defer {
        try? FileManager.default.removeItem(atPath: child.stdoutPath)
        try? FileManager.default.removeItem(atPath: child.stderrPath)
    }
    let timedOut = try await child.waitForExit(killingAfter: timeout)
    return CommandResult(
        command: child.command, status: child.process.terminationStatus,
        exitedNormally: child.process.terminationReason == .exit, timedOut: timedOut, stdout: child.stdout,
        stderr: child.stderr, duration: clock.now - start)
}

/// Runs the vault executable with `arguments` in `cwd`.
func run(
    _ arguments: [String], cwd: String, timeout: Duration = ChildProcess.hangTimeout
) async throws -> CommandResult {
    try await runProcess(try VaultBinary.require(), arguments, cwd: cwd, timeout: timeout)
}
