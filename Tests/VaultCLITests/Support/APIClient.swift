import Foundation
import Testing

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
        configuration.timeoutIntervalForRequest = 20
        configuration.httpMaximumConnectionsPerHost = 16
        session = URLSession(configuration: configuration)
    }

    deinit {
        session.invalidateAndCancel()
    }

    /// Sends one request and returns the status and body.
    func send(
        _ method: String, _ path: String, body: Data? = nil, key: String?, headers: [String: String] = [:]
    ) async throws -> (status: Int, body: Data) {
        var request = URLRequest(url: baseURL.appendingPathComponent(path))
        request.httpMethod = method
        if let key { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body {
            request.httpBody = body
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        return try await withCheckedThrowingContinuation { continuation in
            let task = session.dataTask(with: request) { data, response, error in
                if let error {
                    continuation.resume(throwing: TestFailure("\(method) \(path) failed: \(error)"))
                } else if let response = response as? HTTPURLResponse {
                    continuation.resume(returning: (response.statusCode, data ?? Data()))
                } else {
                    continuation.resume(throwing: TestFailure("\(method) \(path): no HTTP response"))
                }
            }
            task.resume()
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

/// Card numbers for tests: the networks' published test PANs, and generated Luhn-valid ones.
enum TestCards {
    static let published = ["4111111111111111", "4242424242424242", "5555555555554444", "378282246310005"]

    /// An expiry year safely in the future.
    static let expiryYear = Calendar(identifier: .gregorian).component(.year, from: Date()) + 3

    /// `count` random 16-digit Visa-range numbers with a valid Luhn check digit.
    static func generated(_ count: Int) -> [String] {
        (0..<count).map { _ in
            let payload = "4000" + String((0..<11).map { _ in Character(String(Int.random(in: 0...9))) })
            return payload + String(checkDigit(payload))
        }
    }

    /// The Luhn check digit to append to `payload`.
    static func checkDigit(_ payload: String) -> Int {
        var sum = 0
        for (offset, character) in payload.reversed().enumerated() {
            var digit = character.wholeNumberValue!
            if offset % 2 == 0 {
                digit *= 2
                if digit > 9 { digit -= 9 }
            }
            sum += digit
        }
        return (10 - sum % 10) % 10
    }

    static func isLuhnValid(_ pan: String) -> Bool {
        checkDigit(String(pan.dropLast())) == pan.last?.wholeNumberValue
    }
}
