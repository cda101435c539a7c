import Foundation
import Synchronization
import Testing
import VaultTestSupport

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A small HTTP client for the public API of a `vault serve` child process.
final class APIClient: Sendable {
    let baseURL: URL
    let session: URLSession

    init(_ server: ServerProcess) {
        baseURL = server.baseURL
        let configuration = URLSessionConfiguration.ephemeral
        // Generous: a loaded machine must not turn a slow answer into a failure. A request that
        // hangs ends with the test's task, which cancels it.
        configuration.timeoutIntervalForRequest = 300
        configuration.httpMaximumConnectionsPerHost = 16
        session = URLSession(configuration: configuration)
    }

    deinit {
        session.invalidateAndCancel()
    }

    /// Sends one request to the server's public API and returns the status and body.
    func send(
        _ method: String, _ path: String, body: Data? = nil, key: String?, headers: [String: String] = [:]
    ) async throws -> (status: Int, body: Data) {
        try await send(method, baseURL.appendingPathComponent(path), body: body, key: key, headers: headers)
    }

    /// Sends one request to `url` (another listener of the server) and returns the status and body.
    func send(
        _ method: String, _ url: URL, body: Data? = nil, key: String?, headers: [String: String] = [:]
    ) async throws -> (status: Int, body: Data) {
        var request = URLRequest(url: url)
        request.httpMethod = method
        if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let what = "\(method) \(url.path)"
        let task = Mutex<URLSessionDataTask?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let dataTask = session.dataTask(with: request) { data, response, error in
                    if let error {
                        continuation.resume(throwing: TestFailure("\(what) failed: \(error)"))
                    } else if let response = response as? HTTPURLResponse {
                        continuation.resume(returning: (response.statusCode, data ?? Data()))
                    } else {
                        continuation.resume(throwing: TestFailure("\(what): no HTTP response"))
                    }
                }
                task.withLock { $0 = dataTask }
                dataTask.resume()
                // Cancelled before the task was stored: the handler below found nothing to cancel.
                if Task.isCancelled { dataTask.cancel() }
            }
        } onCancel: {
            task.withLock { $0 }?.cancel()
        }
    }

    /// The body of `POST /v1/tokens` and of each entry of `POST /v1/tokens/batch`.
    struct Card: Encodable, Sendable {
        var pan: String
        var expMonth = 12
        var expYear = TestCards.expiryYear
        var cvv: String?
    }

    private struct TokenReply: Decodable {
        var token: String
    }

    private struct BatchReply: Decodable {
        struct Item: Decodable {
            var token: String?
        }
        var results: [Item]
    }

    /// `POST /v1/tokens`: the status, and the token if the body has one.
    func tokenize(_ card: Card, key: String) async throws -> (status: Int, token: String?) {
        let (status, body) = try await send("POST", "/v1/tokens", body: try JSONCoding.encoder.encode(card), key: key)
        return (status, try? JSONCoding.decoder.decode(TokenReply.self, from: body).token)
    }

    /// `POST /v1/tokens` that must answer 201 with a token.
    func tokenizeCreated(_ pan: String, key: String) async throws -> String {
        let (status, token) = try await tokenize(Card(pan: pan), key: key)
        guard status == 201, let token else { throw TestFailure("POST /v1/tokens answered \(status)") }
        return token
    }

    /// `POST /v1/tokens/batch` (at most 1000 cards): the token of each card, in order; throws
    /// unless the batch answers 200 with a token for every card.
    func tokenizeBatch(_ cards: [Card], key: String) async throws -> [String] {
        let (status, body) = try await send(
            "POST", "/v1/tokens/batch", body: try JSONCoding.encoder.encode(["cards": cards]), key: key)
        guard status == 200 else {
            throw TestFailure("POST /v1/tokens/batch answered \(status): \(String(decoding: body, as: UTF8.self))")
        }
        let tokens = try JSONCoding.decoder.decode(BatchReply.self, from: body).results.compactMap(\.token)
        guard tokens.count == cards.count else {
            throw TestFailure("POST /v1/tokens/batch returned \(tokens.count) tokens for \(cards.count) cards")
        }
        return tokens
    }

    /// `GET /v1/tokens/{token}`: the status.
    func metadataStatus(_ token: String, key: String) async throws -> Int {
        try await send("GET", "/v1/tokens/\(token)", key: key).status
    }
}

/// Runs `body` on every element with at most `width` running at once; results in input order.
func concurrentMap<T: Sendable, R: Sendable>(
    _ items: [T], width: Int = 8, _ body: @escaping @Sendable (T) async throws -> R
) async throws -> [R] {
    try await withThrowingTaskGroup(of: [(Int, R)].self) { group in
        for worker in 0..<width {
            group.addTask {
                var results = [(Int, R)]()
                for index in stride(from: worker, to: items.count, by: width) {
                    results.append((index, try await body(items[index])))
                }
                return results
            }
        }
        var all = [(Int, R)]()
        for try await part in group { all += part }
        return all.sorted { $0.0 < $1.0 }.map(\.1)
    }
}

/// Card numbers for requests: generated Luhn-valid ones, and an expiry year safely in the future.
enum TestCards {
    /// An expiry year safely in the future.
    static let expiryYear = Calendar(identifier: .gregorian).component(.year, from: Date()) + 3

    /// `count` random 16-digit Visa-range numbers with a valid Luhn check digit.
    static func generated(_ count: Int) -> [String] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in PANGenerator.pan(length: 16, prefix: "4000", using: &generator).pan }
    }
}
