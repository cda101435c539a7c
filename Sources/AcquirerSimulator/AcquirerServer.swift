import Foundation
public import HTTPListener
public import Hummingbird
public import Logging
import NIOCore

/// The simulator's HTTP side (wire protocol in docs/CRYPTO.md, "Acquirer authorization"):
///
/// - `POST /v1/authorizations` `{"reference","amount","currency":"EUR","card":"<base64 sealed box>"}`
///   → 200 the answer; 400 malformed (`invalid_json`, `invalid_reference`, `invalid_amount`,
///   `invalid_currency`, `invalid_card_block`, `invalid_card`); 409 `reference_reused`;
///   503 `acquirer_unavailable` (magic amount 50300).
/// - `GET /v1/authorizations/{reference}` → 200 the stored answer, or 404 `not_found`.
/// - `GET /healthz` → 200.
///
/// An answer is `{"reference","status","auth_code","acquirer_reference","decline_code","amount",
/// "currency","cvv_present","created_at"}` (`auth_code` and `decline_code` are `null` when not
/// applicable).
public enum AcquirerServer {
    /// The largest request body accepted.
    public static let maximumBodyByteCount = 16 * 1024

    /// The routes above, on `simulator`.
    public static func router(simulator: AcquirerSimulator) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.get("/healthz") { _, _ in HTTPResponse.Status.ok }
        router.post("/v1/authorizations") { request, _ -> Response in
            var request = request
            let buffer: ByteBuffer
            do {
                buffer = try await request.collectBody(upTo: maximumBodyByteCount)
            } catch is NIOTooManyBytesError {
                throw AcquirerError.bodyTooLarge
            }
            let body: RequestBody
            do {
                body = try JSONDecoder().decode(RequestBody.self, from: Data(buffer.readableBytesView))
            } catch {
                throw AcquirerError.invalidJSON
            }
            guard let sealed = Data(base64Encoded: body.card) else { throw AcquirerError.invalidCardBlock }
            let record = try await simulator.authorize(
                AuthorizationSubmission(
                    reference: body.reference, amount: body.amount, currency: body.currency,
                    sealedCard: [UInt8](sealed)))
            return try json(Answer(record))
        }
        router.get("/v1/authorizations/:reference") { _, context -> Response in
            let raw = try context.parameters.require("reference")
            let reference = raw.removingPercentEncoding ?? raw
            guard AcquirerSimulator.isValidReference(reference) else { throw AcquirerError.notFound }
            return try json(Answer(try await simulator.authorization(reference: reference)))
        }
        router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))
        return router
    }

    /// Serves `simulator` on `host:port` until SIGINT or SIGTERM (the `vault acquirer-sim` command).
    /// - Parameter onListening: called with the bound port once the server accepts connections.
    public static func run(
        simulator: AcquirerSimulator, host: String, port: Int, limits: ListenerLimits = ListenerLimits(),
        logger: Logger, onListening: @escaping @Sendable (_ port: Int) async -> Void = { _ in }
    ) async throws {
        let application = Application(
            router: router(simulator: simulator), server: .limitedHTTP1(limits),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger)
        try await application.runService()
    }

    /// Starts serving `simulator` in this process, in a task of its own, and returns once it
    /// accepts connections (port 0: a free port). Stop it with ``RunningAcquirer/stop()``.
    public static func start(
        simulator: AcquirerSimulator, host: String = "127.0.0.1", port: Int = 0,
        limits: ListenerLimits = ListenerLimits(), logger: Logger
    ) async throws -> RunningAcquirer {
        let (events, continuation) = AsyncStream<Result<Int, any Error>>.makeStream()
        let application = Application(
            router: router(simulator: simulator), server: .limitedHTTP1(limits),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in continuation.yield(.success(channel.localAddress?.port ?? port)) },
            logger: logger)
        let task = Task {
            do {
                try await application.runService(gracefulShutdownSignals: [])
                continuation.yield(.failure(CancellationError()))
            } catch {
                continuation.yield(.failure(error))
            }
            continuation.finish()
        }
        for await event in events {
            switch event {
            case .success(let boundPort):
                return RunningAcquirer(host: host, port: boundPort, task: task)
            case .failure(let error):
                throw error
            }
        }
        throw CancellationError()
    }

    private static func json(_ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(
            status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    private struct RequestBody: Decodable {
        var reference: String
        var amount: Int64
        var currency: String
        var card: String
    }

    /// An answer on the wire; `null`s are written out.
    private struct Answer: Encodable {
        let record: AuthorizationRecord

        init(_ record: AuthorizationRecord) {
            self.record = record
        }

        enum CodingKeys: String, CodingKey {
            case reference, status, amount, currency
            case authCode = "auth_code"
            case acquirerReference = "acquirer_reference"
            case declineCode = "decline_code"
            case cvvPresent = "cvv_present"
            case createdAt = "created_at"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(record.reference, forKey: .reference)
            try container.encode(record.status.rawValue, forKey: .status)
            try container.encode(record.authCode, forKey: .authCode)
            try container.encode(record.acquirerReference, forKey: .acquirerReference)
            try container.encode(record.declineCode?.rawValue, forKey: .declineCode)
            try container.encode(record.amount, forKey: .amount)
            try container.encode(record.currency, forKey: .currency)
            try container.encode(record.cvvPresent, forKey: .cvvPresent)
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            try container.encode(formatter.string(from: record.createdAt), forKey: .createdAt)
        }
    }
}

/// A simulator serving in this process (from ``AcquirerServer/start(simulator:host:port:limits:logger:)``).
public final class RunningAcquirer: Sendable {
    public let host: String
    /// The bound port.
    public let port: Int
    private let task: Task<Void, Never>

    init(host: String, port: Int, task: Task<Void, Never>) {
        self.host = host
        self.port = port
        self.task = task
    }

    /// `http://host:port`, what the gateway's `AcquirerEndpoint` takes.
    public var baseURL: String { "http://\(host):\(port)" }

    /// Stops serving and waits until the listener is closed.
    public func stop() async {
        task.cancel()
        await task.value
    }
}
