import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A running `vault serve` child process on a port the system picked.
///
/// `vault serve --public-port 0` prints `vault: public API listening on http://HOST:PORT` with the
/// port actually bound once it listens; the port is read from that line. Should a build ever
/// print 0 there, the server is restarted on a port found free by binding a socket to port 0.
/// Stop it with ``stop()`` (SIGTERM) or ``killNow()`` (SIGKILL), typically in a `defer`.
final class ServerProcess: @unchecked Sendable {
    // @unchecked: every stored property is a constant; `Process` is used from one test at a time.
    let process: Process
    let port: Int
    let stdoutPath: String
    let stderrPath: String

    static let readyPrefix = "vault: public API listening on http://"

    var baseURL: URL { URL(string: "http://127.0.0.1:\(port)")! }

    private init(process: Process, port: Int, stdoutPath: String, stderrPath: String) {
        self.process = process
        self.port = port
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
    }

    /// Starts `vault serve` on the sandbox's vault and waits until it listens.
    static func start(
        _ sandbox: Sandbox, extraArguments: [String] = [], timeout: Duration = .seconds(20)
    ) async throws -> ServerProcess {
        let server = try await launch(sandbox, port: 0, extraArguments: extraArguments, timeout: timeout)
        guard server.port == 0 else { return server }
        server.stop()
        return try await launch(sandbox, port: try freePort(), extraArguments: extraArguments, timeout: timeout)
    }

    private static func launch(
        _ sandbox: Sandbox, port: Int, extraArguments: [String], timeout: Duration
    ) async throws -> ServerProcess {
        let name = "serve-\(UUID().uuidString)"
        let stdoutPath = sandbox.path(name + ".out")
        let stderrPath = sandbox.path(name + ".err")
        _ = FileManager.default.createFile(atPath: stdoutPath, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        guard let out = FileHandle(forWritingAtPath: stdoutPath), let err = FileHandle(forWritingAtPath: stderrPath)
        else { throw TestFailure("cannot create \(stdoutPath)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try VaultBinary.require())
        process.arguments =
            ["serve", "--public-port", String(port), "--detokenize-port", "0", "--log-level", "warning"]
            + sandbox.storageArguments
            + extraArguments
        process.currentDirectoryURL = URL(fileURLWithPath: sandbox.root)
        process.environment = VaultBinary.childEnvironment
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try launchProcess(process)
        try? out.close()
        try? err.close()

        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            let output = (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? ""
            for line in output.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            where line.hasPrefix(readyPrefix) {
                guard let colon = line.lastIndex(of: ":"), let bound = Int(line[line.index(after: colon)...]) else {
                    process.terminate()
                    throw TestFailure("cannot read the port from: \(line)")
                }
                return ServerProcess(process: process, port: bound, stdoutPath: stdoutPath, stderrPath: stderrPath)
            }
            guard process.isRunning else {
                process.waitUntilExit()
                let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
                throw TestFailure(
                    "vault serve exited with status \(process.terminationStatus) before listening\n\(output)\(stderr)")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw TestFailure("vault serve did not print “\(readyPrefix)…” within \(timeout)")
    }

    /// Whether the process is still alive.
    var isRunning: Bool { process.isRunning }

    /// What the server wrote to standard error so far.
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Asks the server to stop (SIGTERM) and waits for it; SIGKILL after 5 seconds.
    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline {
            usleep(10_000)
        }
        if process.isRunning {
            killNow()
        } else {
            process.waitUntilExit()
        }
    }

    /// Kills the server with SIGKILL (no chance to flush or clean up) and waits until it is gone.
    func killNow() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    /// A TCP port nothing listens on right now: bind a socket to port 0 and read what was given.
    static func freePort() throws -> Int {
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw TestFailure("socket() failed (errno \(errno))") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                bind(fd, socketAddress, length) == 0 && getsockname(fd, socketAddress, &length) == 0
            }
        }
        guard bound else { throw TestFailure("cannot bind a socket to port 0 (errno \(errno))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// Runs `body` with a `vault serve` on the sandbox's vault and a client for it; stops the
/// server afterwards, whatever happens.
func withServer<R>(_ sandbox: Sandbox, _ body: (ServerProcess, APIClient) async throws -> R) async throws -> R {
    let server = try await ServerProcess.start(sandbox)
    defer { server.stop() }
    return try await body(server, APIClient(server))
}

extension Sandbox {
    /// Tokenizes `count` generated cards (no CVV) through a short-lived server and returns their
    /// tokens; the server is stopped again before this returns.
    func addRecords(_ count: Int) async throws -> [String] {
        let credential = try await createCredential(name: "seed")
        return try await withServer(self) { _, client in
            try await client.tokenizeBatch(
                TestCards.generated(count).map { APIClient.Card(pan: $0) }, key: credential.secret)
        }
    }
}
