import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A running `vault acquirer-sim` child process on a port the system picked (read from its
/// `acquirer-sim: listening on http://HOST:PORT` line).
final class AcquirerProcess: @unchecked Sendable {
    // @unchecked: constants only; `Process` is used from one test at a time.
    let process: Process
    let port: Int
    let stateDir: String

    static let readyPrefix = "acquirer-sim: listening on http://"

    var url: String { "http://127.0.0.1:\(port)" }
    var publicKeyPath: String { stateDir + "/acquirer.pub" }
    var databasePath: String { stateDir + "/acquirer.db" }

    private init(process: Process, port: Int, stateDir: String) {
        self.process = process
        self.port = port
        self.stateDir = stateDir
    }

    static func start(_ sandbox: Sandbox, extraArguments: [String] = []) async throws -> AcquirerProcess {
        let stateDir = sandbox.path("acquirer")
        let stdoutPath = sandbox.path("acquirer-\(UUID().uuidString).out")
        let stderrPath = stdoutPath.replacingOccurrences(of: ".out", with: ".err")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        guard let out = FileHandle(forWritingAtPath: stdoutPath), let err = FileHandle(forWritingAtPath: stderrPath)
        else { throw TestFailure("cannot create \(stdoutPath)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try VaultBinary.require())
        process.arguments =
            ["acquirer-sim", "--port", "0", "--state-dir", stateDir, "--log-level", "warning"] + extraArguments
        process.currentDirectoryURL = URL(fileURLWithPath: sandbox.root)
        process.environment = VaultBinary.childEnvironment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try launchProcess(process)
        try? out.close()
        try? err.close()
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while clock.now < deadline {
            let output = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
            for line in output.split(separator: "\n") where line.hasPrefix(readyPrefix) {
                if let colon = line.lastIndex(of: ":"), let port = Int(line[line.index(after: colon)...]), port > 0 {
                    return AcquirerProcess(process: process, port: port, stateDir: stateDir)
                }
            }
            guard process.isRunning else {
                let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
                throw TestFailure("vault acquirer-sim exited before listening: \(output)\(stderr)")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw TestFailure("vault acquirer-sim did not start listening")
    }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        process.waitUntilExit()
    }
}
