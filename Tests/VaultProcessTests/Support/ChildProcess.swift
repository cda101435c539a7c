import Foundation
import Synchronization
import VaultTestSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Foundation's `Process.run()` on Linux is not safe to call from several threads at once: CI
/// crashed in its spawn path (a bad `memcpy`) while Swift Testing ran these suites in parallel.
/// Launches go one at a time through this lock; the children still run concurrently.
private let processLaunch = Mutex<Void>(())

/// A child process of a test: the one way these suites start a program (`vault` commands,
/// `vault serve`, `vault acquirer-sim`, `swift package describe`).
///
/// Output goes to files, not pipes, so a chatty child can never block on a full pipe. Every wait
/// polls without a deadline of its own unless given one, and ends when the test's task is
/// cancelled (the suites' `.timeLimit` does that): the child is then killed, so a test that
/// runs out of time leaves no process behind.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: constants only; `Process` is used from one test at a time.
    let process: Process
    /// The program's name and arguments, for messages.
    let command: [String]
    let stdoutPath: String
    let stderrPath: String

    /// How long a command that must end may take before it is killed as hung: far beyond what a
    /// loaded machine needs, and within the suites' time limit.
    static let hangTimeout: Duration = .seconds(300)

    /// How often a wait looks again.
    private static let pollInterval: Duration = .milliseconds(20)

    private init(process: Process, command: [String], stdoutPath: String, stderrPath: String) {
        self.process = process
        self.command = command
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
    }

    /// Starts `executable` with `arguments` in `cwd`, its environment without anything that would
    /// point the vault at another master key; its output goes to `outputBase`.out and .err.
    static func launch(
        _ executable: String, _ arguments: [String], cwd: String, outputBase: String
    ) throws -> ChildProcess {
        let stdoutPath = outputBase + ".out"
        let stderrPath = outputBase + ".err"
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        guard let out = FileHandle(forWritingAtPath: stdoutPath), let err = FileHandle(forWritingAtPath: stderrPath)
        else { throw TestFailure("cannot create output files at \(outputBase)") }
        defer {
            try? out.close()
            try? err.close()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        process.environment = VaultBinary.childEnvironment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try processLaunch.withLock { _ in try process.run() }
        return ChildProcess(
            process: process, command: [(executable as NSString).lastPathComponent] + arguments,
            stdoutPath: stdoutPath, stderrPath: stderrPath)
    }

    var isRunning: Bool { process.isRunning }
    var processIdentifier: Int32 { process.processIdentifier }

    /// What the child wrote to standard output so far.
    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    /// What the child wrote to standard error so far.
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Sleeps one poll interval; if the task is cancelled, kills the child and throws.
    private func pause() async throws {
        do {
            try await Task.sleep(for: Self.pollInterval)
        } catch {
            killNow()
            throw error
        }
    }

    /// Polls `find` until it returns a value; `nil` once the child has exited without one.
    /// - Throws: `CancellationError` (the child killed) if the task is cancelled first.
    func waitFor<T>(_ find: () -> T?) async throws -> T? {
        while true {
            // Checked before the exit, so that what a child printed just before exiting counts.
            let exited = !process.isRunning
            if let found = find() { return found }
            if exited { return nil }
            try await pause()
        }
    }

    /// The first complete line of standard output that starts with `prefix`; `nil` if the child
    /// exited without printing one.
    func waitForLine(startingWith prefix: String) async throws -> Substring? {
        try await waitFor {
            stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().first { $0.hasPrefix(prefix) }
        }
    }

    /// Waits until the child exits, killing it (SIGKILL) once `limit` has passed; returns
    /// whether it had to be killed.
    func waitForExit(killingAfter limit: Duration = hangTimeout) async throws -> Bool {
        let clock = ContinuousClock()
        let start = clock.now
        while process.isRunning {
            if clock.now - start > limit {
                killNow()
                return true
            }
            try await pause()
        }
        process.waitUntilExit()
        return false
    }

    /// Asks the child to stop (SIGTERM) and waits for it; SIGKILL if it is still running after
    /// `grace`. Synchronous, for `defer`.
    func terminate(grace: Duration = .seconds(30)) {
        guard process.isRunning else {
            process.waitUntilExit()
            return
        }
        process.terminate()
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        while process.isRunning && clock.now < deadline {
            usleep(10_000)
        }
        if process.isRunning {
            killNow()
        } else {
            process.waitUntilExit()
        }
    }

    /// Kills the child with SIGKILL (no chance to flush or clean up) and waits until it is gone.
    func killNow() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }
}
