import NIOCore

/// Asks the ``ConnectionGuard`` at the head of the pipeline to end the connection: write
/// `response` (raw bytes, when given) and close as ``ListenerLimits`` describes. Sent as a user
/// outbound event, so it passes the HTTP codecs untouched.
struct EndConnection {
    var response: ByteBuffer?
}

/// The first handler of every connection, on raw bytes: it counts the listener's connections and
/// refuses those over the cap, and it ends connections properly. Hummingbird half-closes a
/// connection after its last response and then waits for the client to close; a client that
/// does not (it is still sending a body, or it just stays) held the connection forever
/// (finding 19). Here any end of output starts a bounded linger instead: input is read and
/// discarded for at most the linger time, then the connection is closed fully.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let connections: ConnectionCounter
    private let maxConnections: Int
    private let lingerTimeout: TimeAmount
    private let writeTimeout: TimeAmount
    private var counted = false
    private var ending = false
    private var lingerTask: Scheduled<Void>?
    private var writeTimeoutTask: Scheduled<Void>?

    /// - Parameter writeTimeout: how long the socket may stay unwritable (the client reads
    ///   nothing of its responses) before the connection is closed; Hummingbird's idle timeout
    ///   stops counting while a response is being written.
    init(connections: ConnectionCounter, maxConnections: Int, lingerTimeout: TimeAmount, writeTimeout: TimeAmount) {
        self.connections = connections
        self.maxConnections = maxConnections
        self.lingerTimeout = lingerTimeout
        self.writeTimeout = writeTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { count(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        count(context)
        context.fireChannelActive()
    }

    private func count(_ context: ChannelHandlerContext) {
        guard !counted else { return }
        counted = true
        guard connections.opened() > maxConnections else { return }
        // No linger here: under a flood, lingering refused connections would hold the very file
        // descriptors the cap protects. The client has rarely sent anything yet.
        ending = true
        context.writeAndFlush(wrapOutboundOut(RawResponse.tooManyConnections)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            counted = false
            connections.closed()
        }
        lingerTask?.cancel()
        lingerTask = nil
        writeTimeoutTask?.cancel()
        writeTimeoutTask = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            writeTimeoutTask?.cancel()
            writeTimeoutTask = nil
        } else if writeTimeoutTask == nil {
            writeTimeoutTask = context.eventLoop.assumeIsolated().scheduleTask(in: writeTimeout) {
                context.close(promise: nil)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Once the connection is ending, nothing more reaches the HTTP side.
        guard !ending else { return }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard !ending else {
            // The HTTP side no longer asks for data; keep draining until the client closes.
            context.read()
            return
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if ending, case ChannelEvent.inputClosed = event {
            context.close(promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !ending else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        context.write(data, promise: promise)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        switch mode {
        case .output where ending:
            promise?.succeed(())
        case .output:
            // Hummingbird ends output after a `Connection: close` exchange: linger, then close.
            linger(context)
            context.close(mode: .output, promise: promise)
        default:
            context.close(mode: mode, promise: promise)
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let event = event as? EndConnection else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        end(context, response: event.response)
        promise?.succeed(())
    }

    /// Writes `response`, ends output after what is pending, and lingers.
    private func end(_ context: ChannelHandlerContext, response: ByteBuffer?) {
        guard !ending else { return }
        if let response { context.write(wrapOutboundOut(response), promise: nil) }
        context.flush()
        linger(context)
        context.close(mode: .output, promise: nil)
    }

    private func linger(_ context: ChannelHandlerContext) {
        guard !ending else { return }
        ending = true
        lingerTask = context.eventLoop.assumeIsolated().scheduleTask(in: lingerTimeout) {
            context.close(promise: nil)
        }
        context.read()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        lingerTask?.cancel()
        lingerTask = nil
        writeTimeoutTask?.cancel()
        writeTimeoutTask = nil
    }
}
