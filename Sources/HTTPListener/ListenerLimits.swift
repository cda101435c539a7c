/// How long a listener waits for a client and how many connections it holds (finding 18: without
/// limits, 400 silent connections exhausted 256 file descriptors and `/healthz` stopped answering).
///
/// - An idle connection (nothing received before a request, between requests, or in the middle
///   of one) is closed after ``idleTimeout``. A request's headers produce nothing until they are
///   complete, so they must arrive within it. So is one whose client leaves a response unread
///   for that long (the socket stays full: a slow read).
/// - A request's body must arrive within ``requestTimeout`` of its headers, however it trickles
///   in; otherwise the client gets `408 request_timeout` and the connection is closed.
/// - Over ``maxConnections`` open connections, a new one gets `503 too_many_connections` and is
///   closed at once, so it costs a file descriptor for an instant only.
/// - A connection that ends after a response (`Connection: close`, an answer sent before the
///   body was read, a refusal) gets the response, then end of stream, then the server discards
///   what the client still sends for at most ``lingerTimeout`` and closes it fully. Closing
///   at once could reset the connection before the client has read the answer.
public struct ListenerLimits: Sendable, Hashable {
    /// The defaults, written once: `vault serve`, `vault acquirer-sim` and the tests use these.
    public static let defaultIdleTimeoutSeconds = 30
    public static let defaultRequestTimeoutSeconds = 60
    public static let defaultMaxConnections = 256
    public static let defaultLingerTimeout = Duration.seconds(2)

    public var idleTimeout: Duration
    public var requestTimeout: Duration
    public var maxConnections: Int
    public var lingerTimeout: Duration

    public init(
        idleTimeout: Duration = .seconds(defaultIdleTimeoutSeconds),
        requestTimeout: Duration = .seconds(defaultRequestTimeoutSeconds),
        maxConnections: Int = defaultMaxConnections, lingerTimeout: Duration = defaultLingerTimeout
    ) {
        self.idleTimeout = idleTimeout
        self.requestTimeout = requestTimeout
        self.maxConnections = maxConnections
        self.lingerTimeout = lingerTimeout
    }
}
