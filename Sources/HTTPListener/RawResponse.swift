import Foundation
import NIOCore

/// A complete HTTP/1.1 response in the API's error envelope, written straight to the socket.
/// Used where no HTTP exchange is under way to answer through (a refused connection, a request
/// the parser rejected, a timeout, `CONNECT`), so it always carries `Content-Length` and
/// `Connection: close`.
enum RawResponse {
    static func error(
        _ status: Int, _ reason: String, code: String, message: String, headers: [(String, String)] = []
    ) -> ByteBuffer {
        let body = "{\"error\":{\"code\":\"\(code)\",\"message\":\"\(message)\"}}"
        var head = "HTTP/1.1 \(status) \(reason)\r\n"
        head += "Content-Type: application/json; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\n"
        head += "Connection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        return ByteBuffer(string: head + "\r\n" + body)
    }

    static let tooManyConnections = error(
        503, "Service Unavailable", code: "too_many_connections",
        message: "the server has too many open connections; retry later", headers: [("Retry-After", "1")])
    static let requestTimeout = error(
        408, "Request Timeout", code: "request_timeout", message: "the request body did not arrive in time")
    static let malformed = error(
        400, "Bad Request", code: "malformed_request",
        message: "the request is not valid HTTP/1.1, or its headers are too large or too many")
    // CONNECT names no resource here, so no method is allowed: an empty Allow (RFC 9110 §10.2.1).
    static let connectNotAllowed = error(
        405, "Method Not Allowed", code: "method_not_allowed", message: "CONNECT is not supported",
        headers: [("Allow", "")])
}
