public import HummingbirdCore
public import Logging
public import NIOCore

/// Hummingbird's HTTP/1 child channel with ``ListenerLimits``: a ``ConnectionGuard`` first in
/// every connection's pipeline, a ``RequestGuard`` after the HTTP codec, and Hummingbird's idle
/// timeout.
public struct LimitedHTTP1Channel: ServerChildChannel {
    public typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let limits: ListenerLimits
    let connections: ConnectionCounter

    init(responder: @escaping HTTPChannelHandler.Responder, limits: ListenerLimits) {
        let requestTimeout = TimeAmount(limits.requestTimeout)
        self.base = HTTP1Channel(
            responder: responder,
            configuration: .init(
                additionalChannelHandlers: [RequestGuard(requestTimeout: requestTimeout)],
                idleTimeout: TimeAmount(limits.idleTimeout)))
        self.limits = limits
        self.connections = ConnectionCounter()
    }

    public func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(
                ConnectionGuard(
                    connections: connections, maxConnections: limits.maxConnections,
                    lingerTimeout: TimeAmount(limits.lingerTimeout), writeTimeout: TimeAmount(limits.idleTimeout)),
                position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return base.setup(channel: channel, logger: logger)
    }

    public func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// An HTTP/1 server with `limits` on every connection (see ``ListenerLimits``).
    public static func limitedHTTP1(_ limits: ListenerLimits) -> HTTPServerBuilder {
        .init { responder in LimitedHTTP1Channel(responder: responder, limits: limits) }
    }
}
