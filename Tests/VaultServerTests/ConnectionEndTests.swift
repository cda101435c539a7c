import Foundation
import HTTPListener
import Testing
import VaultTestSupport

/// Finding 19: connections the server answered early, or could not parse, were left half-open
/// or hanging, and parser errors had an empty body. Raw sockets against a real listener: the
/// server must answer in the error envelope and close the connection fully.
@Suite("Connection ends", .timeLimit(.minutes(10)))
struct ConnectionEndTests {
    static let limits = ListenerLimits(
        idleTimeout: .seconds(30), requestTimeout: .seconds(30), lingerTimeout: .milliseconds(300))

    static func envelopeCode(_ body: String) -> String? {
        let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        return (object?["error"] as? [String: Any])?["code"] as? String
    }

    @Test(
        "Finding 19: an early 413 ends the connection fully (EOF, then resets), with or without Connection: close",
        arguments: [true, false])
    func finding19EarlyResponseClosesFully(connectionClose: Bool) async throws {
        try await withLiveListener(limits: Self.limits) { listener in
            let connection = try listener.connect()
            try await connection.send(
                "POST /v1/tokens HTTP/1.1\r\nHost: vault\r\nAuthorization: Bearer \(listener.key)\r\n"
                    + (connectionClose ? "Connection: close\r\n" : "")
                    + "Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
            try await connection.send([UInt8](repeating: 0x20, count: 64 * 1024))
            let response = try await connection.readResponse()
            #expect(response.status == 413)
            #expect(Self.envelopeCode(response.body) == "body_too_large", "\(response.body)")
            #expect(response.headers["connection"] == "close")
            let (rest, _) = try await connection.readToEnd()
            #expect(rest.isEmpty)
            // Half-closed, the server would keep taking these bytes; closed, it resets.
            try await connection.waitUntilFullyClosed()
        }
    }

    @Test("Finding 19: after a Connection: close exchange the server closes fully even if the client stays")
    func finding19ConnectionCloseReleased() async throws {
        try await withLiveListener(limits: Self.limits) { listener in
            let connection = try listener.connect()
            try await connection.send("GET /healthz HTTP/1.1\r\nHost: vault\r\nConnection: close\r\n\r\n")
            #expect(try await connection.readResponse().status == 200)
            _ = try await connection.readToEnd()
            try await connection.waitUntilFullyClosed()
        }
    }

    @Test("Finding 19: CONNECT gets 405 method_not_allowed with Content-Length and the connection closes")
    func finding19Connect() async throws {
        try await withLiveListener(limits: Self.limits) { listener in
            let connection = try listener.connect()
            try await connection.send("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            let response = try await connection.readResponse()
            #expect(response.status == 405)
            #expect(response.headers["content-length"] != nil)
            #expect(Self.envelopeCode(response.body) == "method_not_allowed", "\(response.body)")
            let (rest, _) = try await connection.readToEnd()
            #expect(rest.isEmpty)
        }
    }

    static let malformedRequests: [(name: String, request: String)] = [
        (
            "2,000 headers",
            "GET /healthz HTTP/1.1\r\nHost: vault\r\n"
                + (0..<2000).map { "X-Header-\($0): \($0)\r\n" }.joined() + "\r\n"
        ),
        (
            "a 1 MiB header",
            "GET /healthz HTTP/1.1\r\nHost: vault\r\nX-Big: " + String(repeating: "a", count: 1 << 20) + "\r\n\r\n"
        ),
        ("not HTTP", "HELLO\u{1}\u{2} there\r\n\r\n"),
    ]

    @Test(
        "Finding 19: a request the parser refuses gets 400 malformed_request in the error envelope, then EOF",
        arguments: malformedRequests.map(\.name))
    func finding19ParserErrorEnvelope(name: String) async throws {
        let request = try #require(Self.malformedRequests.first { $0.name == name }).request
        // A longer linger: the whole request must be sent before the server's full close.
        let limits = ListenerLimits(idleTimeout: .seconds(30), requestTimeout: .seconds(30), lingerTimeout: .seconds(5))
        try await withLiveListener(limits: limits) { listener in
            let connection = try listener.connect()
            try await connection.send(request)
            let response = try await connection.readResponse()
            #expect(response.status == 400)
            #expect(Self.envelopeCode(response.body) == "malformed_request", "\(response.body)")
            #expect(response.headers["connection"] == "close")
            let (rest, _) = try await connection.readToEnd()
            #expect(rest.isEmpty)
        }
    }
}
