import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// File-scope wrappers: inside the class, `send` and `close` would name its own methods.
private func closeSocket(_ fd: Int32) { _ = close(fd) }
private func sendSocket(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, _ flags: Int32) -> Int {
    send(fd, bytes.baseAddress, bytes.count, flags)
}

/// A plain TCP connection to a loopback listener, for tests of connection behaviour that an HTTP
/// client hides (silent clients, half-sent requests, what the server does with the socket).
///
/// Non-blocking: every wait polls and sleeps a few milliseconds, so a test never blocks a
/// thread of the cooperative pool (the server under test needs them) and a `.timeLimit`
/// trait cancels it.
public final class RawConnection: @unchecked Sendable {
    // @unchecked: used by one test task at a time.
    public let fd: Int32
    private var buffer = [UInt8]()

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(description: String) { self.description = description }
    }

    /// How the server ended the connection, as the client saw it.
    public enum End: Sendable, Equatable {
        /// Orderly: FIN (a read returned 0).
        case eof
        /// Reset (RST).
        case reset
    }

    public init(port: Int) throws {
        fd = try Self.connected(port: port)
    }

    private static func connected(port: Int) throws -> Int32 {
        #if canImport(Glibc)
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            closeSocket(fd)
            throw Failure(description: "connect: errno \(code)")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }

    private var isClosed = false

    deinit { close() }

    /// Closes the client's end (idempotent).
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        closeSocket(fd)
    }

    /// Sends all of `bytes`, waiting while the socket buffer is full.
    public func send(_ bytes: [UInt8]) async throws {
        var offset = 0
        while offset < bytes.count {
            switch trySend(Array(bytes[offset...])) {
            case .sent(let count): offset += count
            case .wouldBlock: try await Task.sleep(for: .milliseconds(5))
            case .failed(let code): throw Failure(description: "send: errno \(code)")
            }
        }
    }

    public func send(_ text: String) async throws {
        try await send(Array(text.utf8))
    }

    public enum SendResult: Sendable, Equatable {
        case sent(Int)
        case wouldBlock
        case failed(Int32)
    }

    /// One non-blocking send (no SIGPIPE).
    public func trySend(_ bytes: [UInt8]) -> SendResult {
        #if canImport(Glibc)
            let flags = Int32(MSG_NOSIGNAL)
        #else
            let flags: Int32 = 0
        #endif
        let sent = bytes.withUnsafeBytes { sendSocket(fd, $0, flags) }
        if sent >= 0 { return .sent(sent) }
        return errno == EAGAIN || errno == EWOULDBLOCK ? .wouldBlock : .failed(errno)
    }

    /// Reads until the server ends the connection; returns everything read and how it ended.
    public func readToEnd() async throws -> (bytes: [UInt8], end: End) {
        while true {
            if let end = try readAvailable() {
                defer { buffer.removeAll() }
                return (buffer, end)
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Reads what has arrived without waiting; returns how the connection ended, if it did
    /// (what was read stays for ``readToEnd()``).
    public func pollEnd() throws -> End? {
        try readAvailable()
    }

    /// Reads one response with a `Content-Length` body (or none); returns its status line, its
    /// header lines (lower-cased names) and its body, and keeps what follows for the next read.
    public func readResponse() async throws -> (status: Int, headers: [String: String], body: String) {
        while true {
            if let response = parsedResponse() { return response }
            if let end = try readAvailable() {
                if let response = parsedResponse() { return response }
                throw Failure(
                    description: "the connection ended (\(end)) before a whole response: \(buffer.count) bytes")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The first response in the buffer, removed from it, once it is complete.
    private func parsedResponse() -> (status: Int, headers: [String: String], body: String)? {
        guard let separator = headerEnd() else { return nil }
        let head = String(decoding: buffer[..<separator], as: UTF8.self)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
        var headers = [String: String]()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                .trimmingCharacters(in: .whitespaces)
        }
        let length = Int(headers["content-length"] ?? "0") ?? 0
        let start = separator + 4
        guard buffer.count - start >= length else { return nil }
        let body = String(decoding: buffer[start..<(start + length)], as: UTF8.self)
        buffer.removeFirst(start + length)
        return (status, headers, body)
    }

    private func headerEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for index in 0...(buffer.count - 4)
        where buffer[index] == 13 && buffer[index + 1] == 10 && buffer[index + 2] == 13 && buffer[index + 3] == 10 {
            return index
        }
        return nil
    }

    /// Reads what is there into the buffer; returns how the connection ended, if it did.
    private func readAvailable() throws -> End? {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer += chunk[..<count]
            } else if count == 0 {
                return .eof
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                return nil
            } else if errno == ECONNRESET {
                return .reset
            } else {
                throw Failure(description: "recv: errno \(errno)")
            }
        }
    }

    /// Sends a byte now and then until the socket reports the server closed it fully (a reset
    /// answers data sent to a closed socket): a half-closed connection keeps taking them.
    public func waitUntilFullyClosed() async throws {
        while true {
            switch trySend([0x61]) {
            case .failed(let code) where code == EPIPE || code == ECONNRESET: return
            case .failed(let code): throw Failure(description: "send: errno \(code)")
            case .sent, .wouldBlock: try await Task.sleep(for: .milliseconds(20))
            }
        }
    }
}
