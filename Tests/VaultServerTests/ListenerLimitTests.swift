import Foundation
import HTTPListener
import Testing
import VaultTestSupport

/// Finding 18: a listener had no idle, header or body timeout and no connection cap, so silent
/// connections piled up until the process ran out of file descriptors. Raw sockets against a
/// real listener, with short limits.
@Suite("Listener timeouts and connection cap", .timeLimit(.minutes(10)))
struct ListenerLimitTests {
    static let short = ListenerLimits(
        idleTimeout: .milliseconds(300), requestTimeout: .seconds(1), maxConnections: 64,
        lingerTimeout: .milliseconds(200))

    @Test("Finding 18: a connection that sends nothing is closed by the server after the idle timeout")
    func finding18SilentConnectionClosed() async throws {
        try await withLiveListener(limits: Self.short) { listener in
            let connection = try listener.connect()
            let (bytes, _) = try await connection.readToEnd()
            #expect(bytes.isEmpty, "\(String(decoding: bytes, as: UTF8.self))")
        }
    }

    @Test(
        "Finding 18: headers that declare a body, then silence, are closed after the idle timeout",
        arguments: ["", "{\"pan\":"])
    func finding18StalledBodyClosed(bodyStart: String) async throws {
        try await withLiveListener(limits: Self.short) { listener in
            let connection = try listener.connect()
            try await connection.send(
                "POST /v1/tokens HTTP/1.1\r\nHost: vault\r\nAuthorization: Bearer \(listener.key)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n\(bodyStart)")
            let (bytes, _) = try await connection.readToEnd()
            // Closed without an answer, or with the 408 of the request timeout.
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(bytes.isEmpty || text.hasPrefix("HTTP/1.1 408"), "\(text)")
        }
    }

    @Test("Finding 18: a body trickled byte by byte gets 408 request_timeout after the request timeout, then EOF")
    func finding18TrickledBodyTimesOut() async throws {
        // An idle timeout far above the gaps between bytes, even on a loaded machine: only the
        // request timeout can end this request.
        let limits = ListenerLimits(idleTimeout: .seconds(10), requestTimeout: .seconds(1))
        try await withLiveListener(limits: limits) { listener in
            let connection = try listener.connect()
            try await connection.send(
                "POST /v1/tokens HTTP/1.1\r\nHost: vault\r\nAuthorization: Bearer \(listener.key)\r\n"
                    + "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            while try connection.pollEnd() == nil {
                _ = connection.trySend([0x20])
                try await Task.sleep(for: .milliseconds(50))
            }
            let text = String(decoding: try await connection.readToEnd().bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 408"), "\(text)")
            #expect(text.contains("\"code\":\"request_timeout\""), "\(text)")
        }
    }

    @Test("Finding 18: past the cap a new connection gets 503 and is closed; after a release /healthz answers")
    func finding18ConnectionCap() async throws {
        let limits = ListenerLimits(idleTimeout: .seconds(30), requestTimeout: .seconds(30), maxConnections: 2)
        try await withLiveListener(limits: limits) { listener in
            // Two connections the server has certainly accepted: each got an answer.
            let first = try listener.connect()
            let second = try listener.connect()
            #expect(try await listener.healthz(on: first) == 200)
            #expect(try await listener.healthz(on: second) == 200)

            let third = try listener.connect()
            let (bytes, _) = try await third.readToEnd()
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(text.hasPrefix("HTTP/1.1 503"), "\(text)")
            #expect(text.contains("\"code\":\"too_many_connections\""), "\(text)")

            first.close()
            // The server learns of the close a moment later; until then a new one is refused.
            while true {
                let fresh = try listener.connect()
                try? await fresh.send("GET /healthz HTTP/1.1\r\nHost: vault\r\n\r\n")
                if let response = try? await fresh.readResponse() {
                    if response.status == 200 { break }
                    #expect(response.status == 503)
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try await listener.healthz(on: second) == 200, "the connections under the cap still serve")
        }
    }

    @Test("Finding 18: the detokenize listener has the same limits")
    func finding18DetokenizeListener() async throws {
        try await withLiveListener(limits: Self.short, detokenize: true) { listener in
            #expect(try await listener.healthz() == 200)
            let (bytes, _) = try await listener.connect().readToEnd()
            #expect(bytes.isEmpty)
        }
    }
}
