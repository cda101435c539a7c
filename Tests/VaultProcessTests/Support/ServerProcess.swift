import Foundation
import Testing
import VaultTestSupport

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
final class ServerProcess: Sendable {
    let child: ChildProcess
    let port: Int

    static let readyPrefix = "vault: public API listening on http://"

    var baseURL: URL { URL(string: "http://127.0.0.1:\(port)")! }
    var process: Process { child.process }
    var stdoutPath: String { child.stdoutPath }

    private init(child: ChildProcess, port: Int) {
        self.child = child
        self.port = port
    }

    /// Starts `vault serve` on the sandbox's vault and waits until it listens (however long
    /// that takes; the suite's time limit bounds it).
    static func start(_ sandbox: Sandbox, extraArguments: [String] = []) async throws -> ServerProcess {
        let server = try await launch(sandbox, port: 0, extraArguments: extraArguments)
        guard server.port == 0 else { return server }
        server.stop()
        return try await launch(sandbox, port: try freePort(), extraArguments: extraArguments)
    }

    private static func launch(_ sandbox: Sandbox, port: Int, extraArguments: [String]) async throws -> ServerProcess {
        let child = try ChildProcess.launch(
            try VaultBinary.require(),
            [
                "serve", "--public-port", String(port), "--detokenize-port", "0", "--network-port", "0", "--log-level",
                "warning",
            ]
                + sandbox.storageArguments + extraArguments,
            cwd: sandbox.root, outputBase: sandbox.path("serve-\(UUID().uuidString)"))
        guard let line = try await child.waitForLine(startingWith: readyPrefix) else {
            child.killNow()
            throw TestFailure(
                "vault serve exited with status \(child.process.terminationStatus) before listening\n"
                    + "\(child.stdout)\(child.stderr)")
        }
        guard let colon = line.lastIndex(of: ":"), let bound = Int(line[line.index(after: colon)...]) else {
            child.killNow()
            throw TestFailure("cannot read the port from: \(line)")
        }
        return ServerProcess(child: child, port: bound)
    }

    /// The detokenize listener's port, from the line `vault serve` prints when it listens.
    func detokenizePort() async throws -> Int {
        let prefix = "vault: detokenize API listening on http://"
        guard let line = try await child.waitForLine(startingWith: prefix),
            let colon = line.lastIndex(of: ":"), let port = Int(line[line.index(after: colon)...]), port > 0
        else { throw TestFailure("vault serve did not print its detokenize port: \(stderr)") }
        return port
    }

    /// Whether the process is still alive.
    var isRunning: Bool { child.isRunning }

    /// What the server wrote to standard error so far.
    var stderr: String { child.stderr }

    /// Asks the server to stop (SIGTERM) and waits for it; SIGKILL if it does not.
    func stop() { child.terminate() }

    /// Kills the server with SIGKILL (no chance to flush or clean up) and waits until it is gone.
    func killNow() { child.killNow() }

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
