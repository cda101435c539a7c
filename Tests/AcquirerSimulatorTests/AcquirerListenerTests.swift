import AcquirerSimulator
import Foundation
import HTTPListener
import Testing
import VaultTestSupport

/// Findings 18 and 19 on the simulator's listener: it has the same limits and answers as the
/// vault's (it is built with the same ``HTTPListener``).
@Suite("Acquirer simulator listener", .timeLimit(.minutes(10)))
struct AcquirerListenerTests {
    static func withListener(limits: ListenerLimits, _ body: (RunningAcquirer) async throws -> Void) async throws {
        try await withTemporaryDirectory("acquirer-tests") { root in
            let logger = TestLog.quiet()
            let simulator = try AcquirerSimulator.open(stateDirectory: root, logger: logger)
            let server = try await AcquirerServer.start(simulator: simulator, limits: limits, logger: logger)
            do {
                try await body(server)
                await server.stop()
            } catch {
                await server.stop()
                throw error
            }
        }
    }

    @Test("Finding 18: a silent connection is closed after the idle timeout; over the cap one gets 503")
    func finding18Limits() async throws {
        let limits = ListenerLimits(idleTimeout: .seconds(5), requestTimeout: .seconds(1), maxConnections: 1)
        try await Self.withListener(limits: limits) { server in
            // The cap is 1; this connection holds it (answered, so certainly counted) until it
            // has been idle for the idle timeout.
            let silent = try RawConnection(port: server.port)
            try await silent.send("GET /healthz HTTP/1.1\r\nHost: acquirer\r\n\r\n")
            #expect(try await silent.readResponse().status == 200)
            let refused = try RawConnection(port: server.port)
            let (refusal, _) = try await refused.readToEnd()
            let text = String(decoding: refusal, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 503") && text.contains("too_many_connections"), "\(text)")
            let (bytes, _) = try await silent.readToEnd()
            #expect(bytes.isEmpty)
        }
    }

    @Test("Finding 19: a known path under another method is 405 method_not_allowed with Allow")
    func finding19MethodNotAllowed() async throws {
        try await Self.withListener(limits: ListenerLimits()) { server in
            let connection = try RawConnection(port: server.port)
            try await connection.send("GET /v1/authorizations HTTP/1.1\r\nHost: acquirer\r\n\r\n")
            let response = try await connection.readResponse()
            #expect(response.status == 405)
            #expect(response.headers["allow"] == "POST")
            #expect(response.body.contains("\"code\":\"method_not_allowed\""), "\(response.body)")
        }
    }
}
