import Foundation
import VaultTestSupport

/// A running `vault acquirer-sim` child process on a port the system picked (read from its
/// `acquirer-sim: listening on http://HOST:PORT` line).
final class AcquirerProcess: Sendable {
    let child: ChildProcess
    let port: Int
    let stateDir: String

    static let readyPrefix = "acquirer-sim: listening on http://"

    var process: Process { child.process }
    var url: String { "http://127.0.0.1:\(port)" }
    var publicKeyPath: String { stateDir + "/acquirer.pub" }
    var databasePath: String { stateDir + "/acquirer.db" }
    /// What the simulator logged so far (standard error).
    var stderr: String { child.stderr }

    private init(child: ChildProcess, port: Int, stateDir: String) {
        self.child = child
        self.port = port
        self.stateDir = stateDir
    }

    /// Starts `vault acquirer-sim` in the sandbox (logging at `logLevel`) and waits until it
    /// listens (however long that takes; the suite's time limit bounds it).
    static func start(
        _ sandbox: Sandbox, logLevel: String = "warning", extraArguments: [String] = []
    ) async throws -> AcquirerProcess {
        let stateDir = sandbox.path("acquirer")
        let child = try ChildProcess.launch(
            try VaultBinary.require(),
            ["acquirer-sim", "--port", "0", "--state-dir", stateDir, "--log-level", logLevel] + extraArguments,
            cwd: sandbox.root, outputBase: sandbox.path("acquirer-\(UUID().uuidString)"))
        guard let line = try await child.waitForLine(startingWith: readyPrefix) else {
            child.killNow()
            throw TestFailure("vault acquirer-sim exited before listening: \(child.stdout)\(child.stderr)")
        }
        guard let colon = line.lastIndex(of: ":"), let port = Int(line[line.index(after: colon)...]), port > 0 else {
            child.killNow()
            throw TestFailure("cannot read the port from: \(line)")
        }
        return AcquirerProcess(child: child, port: port, stateDir: stateDir)
    }

    /// Asks the simulator to stop (SIGTERM) and waits for it; SIGKILL if it does not.
    func stop() { child.terminate() }
}
