import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Sits between the HTTP codec and Hummingbird on every connection and covers what Hummingbird
/// leaves open (findings 18 and 19):
///
/// - the body of a request must arrive within the request timeout of its head (Hummingbird's idle
///   timeout restarts on every body part, so a body trickled byte by byte was never cut off);
/// - a response sent before its request's body was read (413, 401, …) ends the connection
///   (`Connection: close`) instead of reading and discarding a body of any size;
/// - `CONNECT` is answered here: NIO's encoder drops the body and `Content-Length` of any
///   response to it, which left clients waiting for a body that never ended;
/// - a request the parser rejects (too many or too large headers, not HTTP) gets the error
///   envelope, not Hummingbird's empty 400.
///
/// Whatever it answers itself goes out through ``ConnectionGuard`` as raw bytes, and from then on
/// nothing of the connection reaches Hummingbird.
final class RequestGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let requestTimeout: TimeAmount
    /// Requests whose head was read and whose response has not ended.
    private var requestsInFlight = 0
    /// Between a request's head and its end.
    private var readingRequest = false
    private var requestDeadline = NIODeadline.distantFuture
    private var timeoutTask: Scheduled<Void>?
    /// Between a response's head and its end.
    private var writingResponse = false
    private var closeAfterResponse = false
    /// Set once this handler answered for Hummingbird; the connection is ending.
    private var answered = false

    init(requestTimeout: TimeAmount) {
        self.requestTimeout = requestTimeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !answered else { return }
        switch unwrapInboundIn(data) {
        case .head(let head):
            if head.method == .connect {
                answer(context, RawResponse.connectNotAllowed)
                return
            }
            requestsInFlight += 1
            readingRequest = true
            requestDeadline = .now() + requestTimeout
        case .body:
            // Requests without a body (most GETs) never start a timer; the idle timeout covers a
            // head that declares a body and then nothing comes.
            if timeoutTask == nil, readingRequest {
                timeoutTask = context.eventLoop.assumeIsolated().scheduleTask(deadline: requestDeadline) {
                    self.timeoutTask = nil
                    self.requestTimedOut(context)
                }
            }
        case .end:
            readingRequest = false
            cancelTimeout()
        }
        context.fireChannelRead(data)
    }

    private func requestTimedOut(_ context: ChannelHandlerContext) {
        guard readingRequest, !answered else { return }
        if writingResponse || requestsInFlight > 1 {
            // A response is on its way: it cannot be interleaved with another one.
            answered = true
            context.close(promise: nil)
        } else {
            answer(context, RawResponse.requestTimeout)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard !answered else {
            promise?.fail(ChannelError.outputClosed)
            return
        }
        switch unwrapOutboundIn(data) {
        case .head(var head):
            writingResponse = true
            if readingRequest, requestsInFlight == 1 {
                // Answered before the body was read: end the connection after this response rather
                // than read the rest of a body nobody wants.
                closeAfterResponse = true
                head.headerFields[.connection] = "close"
                context.write(wrapOutboundOut(.head(head)), promise: promise)
                return
            }
        case .body:
            break
        case .end:
            writingResponse = false
            requestsInFlight -= 1
            context.write(data, promise: promise)
            if closeAfterResponse {
                answered = true
                cancelTimeout()
                context.triggerUserOutboundEvent(EndConnection(response: nil), promise: nil)
            }
            return
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // With a response under way, Hummingbird handles the error (it closes the connection).
        guard error is HTTPParserError, requestsInFlight == 0, !answered else {
            context.fireErrorCaught(error)
            return
        }
        answer(context, RawResponse.malformed)
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelTimeout()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimeout()
    }

    /// Answers with `response` and ends the connection; Hummingbird sees nothing more of it.
    private func answer(_ context: ChannelHandlerContext, _ response: ByteBuffer) {
        answered = true
        cancelTimeout()
        context.triggerUserOutboundEvent(EndConnection(response: response), promise: nil)
    }

    private func cancelTimeout() {
        timeoutTask?.cancel()
        timeoutTask = nil
    }
}
