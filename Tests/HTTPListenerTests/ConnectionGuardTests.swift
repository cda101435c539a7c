import NIOCore
import NIOEmbedded
import Testing

@testable import HTTPListener

/// ``ConnectionGuard`` on an embedded channel, on the embedded event loop's clock: a client that
/// leaves its responses unread (the socket stays unwritable) is closed after the write timeout.
@Suite("Connection guard")
struct ConnectionGuardTests {
    static func channel(counter: ConnectionCounter = ConnectionCounter(), max: Int = 10) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            ConnectionGuard(
                connections: counter, maxConnections: max, lingerTimeout: .seconds(2), writeTimeout: .seconds(30)))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    @Test("Slow read: a socket unwritable for the write timeout is closed; one that drains in time is not")
    func slowReaderClosed() async throws {
        let channel = try Self.channel()
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        #expect(channel.isActive)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.advanceTime(by: .seconds(60))
        #expect(channel.isActive, "the client read in time")

        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.advanceTime(by: .seconds(30))
        #expect(!channel.isActive, "nothing was read for the write timeout")
    }

    @Test("Over the cap: 503 too_many_connections, then closed; the count follows opens and closes")
    func cap() async throws {
        let counter = ConnectionCounter()
        let first = try Self.channel(counter: counter, max: 1)
        #expect(counter.current == 1)
        let second = try Self.channel(counter: counter, max: 1)
        let written = try #require(try second.readOutbound(as: ByteBuffer.self))
        #expect(String(buffer: written).hasPrefix("HTTP/1.1 503 "))
        #expect(String(buffer: written).contains(#""code":"too_many_connections""#))
        #expect(!second.isActive)
        #expect(counter.current == 1)
        _ = try first.finish()
        #expect(counter.current == 0)
    }
}
