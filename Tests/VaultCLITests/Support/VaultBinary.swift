import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// End-to-end helpers: these tests run the real `vault` executable as a child process, the way an
// operator or a deployment script would, and never link the vault's modules.

/// Foundation's `Process.run()` on Linux is not safe to call from several threads at once: CI
/// crashed in its spawn path (a bad `memcpy`) while Swift Testing ran these suites in parallel.
/// Launches go one at a time through this lock; the children still run concurrently.
private let processLaunch = Mutex<Void>(())

/// Starts `process` (see `processLaunch`).
func launchProcess(_ process: Process) throws {
    try processLaunch.withLock { _ in try process.run() }
}

/// A failure of the test harness itself (binary missing, server did not start, …).
struct TestFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

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

/// Runs `executable` with `arguments` in `cwd` and waits for it, killing it after `timeout`.
/// Output goes to temporary files (not pipes), so a chatty child can never block on a full pipe.
func runProcess(
    _ executable: String, _ arguments: [String], cwd: String, timeout: Duration = .seconds(30)
) async throws -> CommandResult {
    let base = FileManager.default.temporaryDirectory.appendingPathComponent("vault-cli-run-\(UUID().uuidString)").path
    let outPath = base + ".out"
    let errPath = base + ".err"
    defer {
        try? FileManager.default.removeItem(atPath: outPath)
        try? FileManager.default.removeItem(atPath: errPath)
    }
    _ = FileManager.default.createFile(atPath: outPath, contents: nil)
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    guard let out = FileHandle(forWritingAtPath: outPath), let err = FileHandle(forWritingAtPath: errPath) else {
        throw TestFailure("cannot create output files at \(base)")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: cwd)
    process.environment = VaultBinary.childEnvironment
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = out
    process.standardError = err
    let clock = ContinuousClock()
    let start = clock.now
    try launchProcess(process)
    try? out.close()
    try? err.close()
    var timedOut = false
    while process.isRunning {
        if clock.now - start > timeout {
            timedOut = true
            kill(process.processIdentifier, SIGKILL)
            break
        }
        try? await Task.sleep(for: .milliseconds(10))
    }
    process.waitUntilExit()
    let duration = clock.now - start
    let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return CommandResult(
        command: [(executable as NSString).lastPathComponent] + arguments, status: process.terminationStatus,
        exitedNormally: process.terminationReason == .exit, timedOut: timedOut, stdout: stdout, stderr: stderr,
        duration: duration)
}

/// Runs the vault executable with `arguments` in `cwd`.
func run(_ arguments: [String], cwd: String, timeout: Duration = .seconds(30)) async throws -> CommandResult {
    try await runProcess(try VaultBinary.require(), arguments, cwd: cwd, timeout: timeout)
}
