import CardTokens
import Detokenization
import Foundation
import Hummingbird
import TokenVault

/// `/v1/tokens`: tokenize, batch tokenize, metadata, delete.
struct TokenController {
    let tokens: TokenVault
    /// Cards per second per API key (a batch of n cards takes n); `nil` for no limit.
    let rateLimiter: RateLimiter?
    static let singleBodyLimit = 16 * 1024
    static let batchBodyLimit = 1 << 20
    static let batchLimit = 1000

    func addRoutes(to router: Router<VaultRequestContext>) {
        router.post("/v1/tokens", use: tokenize)
        router.post("/v1/tokens/batch", use: tokenizeBatch)
        router.get("/v1/tokens/:token", use: metadata)
        router.delete("/v1/tokens/:token", use: delete)
    }

    /// The body of a tokenize request, as the client sends it.
    struct CardBody: Decodable {
        var pan: String
        var expMonth: Int
        var expYear: Int
        var cvv: String?
        var format: String?
        var dedupe: Bool?

        enum CodingKeys: String, CodingKey {
            case pan, cvv, format, dedupe
            case expMonth = "exp_month"
            case expYear = "exp_year"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            pan = try container.decode(String.self, forKey: .pan)
            expMonth = try container.decodeInteger(Int.self, forKey: .expMonth)
            expYear = try container.decodeInteger(Int.self, forKey: .expYear)
            cvv = try container.decodeIfPresentNotNull(String.self, forKey: .cvv)
            format = try container.decodeIfPresentNotNull(String.self, forKey: .format)
            dedupe = try container.decodeIfPresentNotNull(Bool.self, forKey: .dedupe)
        }

        func request(now: Date) throws -> TokenizeRequest {
            let format = try format.map { name in
                guard let format = TokenFormat(rawValue: name) else {
                    throw CardValidationError(.tokenFormat, "format must be opaque or numeric")
                }
                return format
            }
            let card = try CardInput(pan: pan, expMonth: expMonth, expYear: expYear, cvv: cvv, now: now)
            return TokenizeRequest(card: card, format: format ?? .opaque, dedupe: dedupe ?? false)
        }
    }

    /// Token metadata as returned by every route.
    struct TokenBody: Encodable {
        var token: String
        var format: String
        var bin: String
        var last4: String
        var brand: String
        var expMonth: Int
        var expYear: Int
        var fingerprint: String
        var createdAt: String
        var cvvHeld: Bool
        var cvvExpiresAt: String?

        enum CodingKeys: String, CodingKey {
            case token, format, bin, last4, brand, fingerprint
            case expMonth = "exp_month"
            case expYear = "exp_year"
            case createdAt = "created_at"
            case cvvHeld = "cvv_held"
            case cvvExpiresAt = "cvv_expires_at"
        }

        init(_ metadata: CardMetadata, now: Date) {
            token = metadata.token.rawValue
            format = metadata.format.rawValue
            bin = metadata.bin
            last4 = metadata.last4
            brand = metadata.brand.rawValue
            expMonth = metadata.expMonth
            expYear = metadata.expYear
            fingerprint = metadata.fingerprint
            createdAt = Timestamp.string(metadata.createdAt)
            cvvHeld = metadata.cvvHeld(at: now)
            cvvExpiresAt = cvvHeld ? metadata.cvvExpiresAt.map(Timestamp.string) : nil
        }
    }

    /// Takes `cards` from the key's budget, or throws `429 rate_limited`.
    private func limit(_ credential: Credential, cards: Int) throws {
        guard let rateLimiter, let wait = rateLimiter.acquire(credential.id, cost: cards) else { return }
        var error = APIError(
            .tooManyRequests, code: "rate_limited",
            message: "too many cards tokenized by this API key; retry after \(wait) s")
        error.headers = [.retryAfter: String(wait)]
        throw error
    }

    @Sendable func tokenize(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let credential = try context.require(.tokenize)
        let body = try await JSONRequest.decode(CardBody.self, from: request, limit: Self.singleBodyLimit)
        let now = Date()
        let card = try body.request(now: now)
        try limit(credential, cards: 1)
        let result = try await tokens.tokenize(card, by: credential.principal, origin: context.remoteAddress)
        return try JSONResponse.make(TokenBody(result.metadata, now: now), status: result.created ? .created : .ok)
    }

    /// One entry of a batch: a card, or why it could not be read. Decoding each entry on its
    /// own lets one malformed card fail alone.
    struct BatchEntry: Decodable {
        var card: Result<CardBody, APIError>

        init(from decoder: any Decoder) throws {
            do {
                card = .success(try CardBody(from: decoder))
            } catch let error as DecodingError {
                card = .failure(APIError(error))
            } catch {
                // Foundation's internal `JSONError` (e.g. a lone UTF-16 surrogate in a string):
                // this card fails alone. Its description may hold the value: never shown.
                card = .failure(
                    APIError(.badRequest, code: "invalid_field", message: "a field of this card has an invalid value"))
            }
        }
    }

    struct BatchBody: Decodable {
        var cards: [BatchEntry]
    }

    struct BatchResult: Encodable {
        var results: [BatchItem]
    }

    enum BatchItem: Encodable {
        case token(TokenBody)
        case error(APIError.Envelope)

        func encode(to encoder: any Encoder) throws {
            switch self {
            case .token(let body): try body.encode(to: encoder)
            case .error(let envelope): try envelope.encode(to: encoder)
            }
        }
    }

    @Sendable func tokenizeBatch(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let credential = try context.require(.tokenize)
        let body = try await JSONRequest.decode(BatchBody.self, from: request, limit: Self.batchBodyLimit)
        guard (1...Self.batchLimit).contains(body.cards.count) else {
            throw APIError(
                .badRequest, code: "invalid_batch_size", message: "cards must hold 1 to \(Self.batchLimit) entries")
        }
        let now = Date()
        var items = [BatchItem?](repeating: nil, count: body.cards.count)
        var requests = [TokenizeRequest]()
        var positions = [Int]()
        for (index, entry) in body.cards.enumerated() {
            do {
                requests.append(try entry.card.get().request(now: now))
                positions.append(index)
            } catch {
                items[index] = .error((APIError.from(error) ?? .internalError).envelope)
            }
        }
        try limit(credential, cards: requests.count)
        let results = try await tokens.tokenize(
            batch: requests, by: credential.principal, origin: context.remoteAddress)
        for (position, result) in zip(positions, results) {
            switch result {
            case .success(let result): items[position] = .token(TokenBody(result.metadata, now: now))
            case .failure(let error): items[position] = .error((APIError.from(error) ?? .internalError).envelope)
            }
        }
        return try JSONResponse.make(BatchResult(results: items.map { $0! }))
    }

    @Sendable func metadata(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let credential = try context.require(.tokensRead)
        let token = try Token(validating: context.parameters.require("token"))
        return try JSONResponse.make(
            TokenBody(try await tokens.metadata(of: token, for: credential.principal), now: Date()))
    }

    @Sendable func delete(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let credential = try context.require(.tokensDelete)
        let token = try Token(validating: context.parameters.require("token"))
        try await tokens.delete(token, by: credential.principal)
        return Response(status: .noContent)
    }
}
