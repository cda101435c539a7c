import Audit
import CardTokens
import Detokenization
import Foundation
import Hummingbird
import TokenVault

/// The detokenize listener's routes: `POST /v1/detokenize` and `GET /v1/audit`.
struct DetokenizeController {
    let detokenizer: Detokenizer
    let audit: SQLiteAuditLog
    static let bodyLimit = 256 * 1024

    func addRoutes(to router: Router<VaultRequestContext>) {
        router.post("/v1/detokenize", use: detokenize)
        router.get("/v1/audit", use: auditRecords)
    }

    struct Body: Decodable {
        var tokens: [String]
        var purpose: String
        var reference: String
        var reveal: String?

        enum CodingKeys: String, CodingKey { case tokens, purpose, reference, reveal }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            tokens = try container.decode([String].self, forKey: .tokens)
            purpose = try container.decode(String.self, forKey: .purpose)
            reference = try container.decode(String.self, forKey: .reference)
            reveal = try container.decodeIfPresentNotNull(String.self, forKey: .reveal)
        }
    }

    struct ResultBody: Encodable {
        var results: [Item]

        enum Item: Encodable {
            case card(Card)
            case error(ErrorItem)

            func encode(to encoder: any Encoder) throws {
                switch self {
                case .card(let card): try card.encode(to: encoder)
                case .error(let error): try error.encode(to: encoder)
                }
            }
        }

        struct Card: Encodable {
            var token: String
            var pan: String?
            var maskedPan: String?
            var expMonth: Int
            var expYear: Int
            var cvv: String?

            enum CodingKeys: String, CodingKey {
                case token, pan, cvv
                case maskedPan = "masked_pan"
                case expMonth = "exp_month"
                case expYear = "exp_year"
            }
        }

        struct ErrorItem: Encodable {
            var token: String?
            var error: APIError.Envelope.Body

            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                // `token: null` for a string that was not a token: it is never echoed.
                try container.encode(token, forKey: .token)
                try container.encode(error, forKey: .error)
            }

            enum CodingKeys: String, CodingKey { case token, error }
        }
    }

    @Sendable func detokenize(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let caller = Caller(
            credential: context.credential, presentedID: context.presentedCredentialID, origin: context.remoteAddress)
        do {
            let credential = try await detokenizer.authorize(caller)
            let body: Body
            do {
                body = try await JSONRequest.decode(Body.self, from: request, limit: Self.bodyLimit)
            } catch let error as APIError {
                // Audited as a bad request; answered with the decoder's own status (413 for a
                // body over the limit, as on the public listener).
                _ = await detokenizer.refuse(
                    caller, error: .init(.invalidInput, code: error.code, message: error.message))
                throw error
            }
            guard let reveal = RevealLevel(rawValue: body.reveal ?? RevealLevel.masked.rawValue) else {
                throw await detokenizer.refuse(
                    caller, error: .init(.invalidInput, code: "invalid_reveal", message: "reveal must be masked or pan")
                )
            }
            let results = try await detokenizer.detokenize(
                DetokenizeRequest(
                    tokens: body.tokens, purpose: body.purpose, reference: body.reference, reveal: reveal),
                credential: credential, caller: caller)
            var response = try JSONResponse.make(
                ResultBody(
                    results: results.map { result in
                        switch result {
                        case .card(let token, let pan, let maskedPan, let expMonth, let expYear, let cvv):
                            .card(
                                .init(
                                    token: token, pan: pan, maskedPan: maskedPan, expMonth: expMonth, expYear: expYear,
                                    cvv: cvv))
                        case .error(let token, let code, let message):
                            .error(.init(token: token, error: .init(code: code, message: message)))
                        }
                    }))
            // Card data: no cache on the way may keep it.
            response.headers[.cacheControl] = "no-store"
            return response
        } catch let error as DetokenizationError {
            throw APIError(error)
        }
    }

    struct AuditPage: Encodable {
        var records: [Record]
        /// The `after` of the next page, or `nil` on the last page.
        var nextAfter: Int64?

        enum CodingKeys: String, CodingKey {
            case records
            case nextAfter = "next_after"
        }

        /// `next_after` is always present: a number, or `null` on the last page (as the CLI prints it).
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(records, forKey: .records)
            try container.encode(nextAfter, forKey: .nextAfter)
        }

        struct Record: Encodable {
            var sequence: Int64
            var time: String
            var actor: String
            var type: String
            var outcome: String
            var origin: String
            var objects: [String]
            var purpose: String?
            var reference: String?
            var detail: String?
        }
    }

    @Sendable func auditRecords(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let credential: Credential
        do {
            credential = try context.require(.auditRead)
        } catch let error as APIError {
            // Refused reads of the log are recorded like refused detokenize requests (and
            // coalesced per peer alike when no valid key was sent).
            let caller = Caller(
                credential: context.credential, presentedID: context.presentedCredentialID,
                origin: context.remoteAddress)
            _ = await detokenizer.refuse(
                caller, error: DetokenizationError(.forbidden, code: error.code, message: error.message),
                type: "audit.read")
            throw error
        }
        let query = request.uri.queryParameters
        let paging = try PageQuery(request, after: "a record sequence number")
        let since = try query.get("since").map { value in
            guard let date = try? Date(value, strategy: .iso8601) else {
                throw APIError(.badRequest, code: "invalid_since", message: "since must be an RFC 3339 time")
            }
            return date
        }
        let records = try await audit.records(
            since: since, actor: query.get("actor"), token: query.get("token"), after: paging.after, limit: paging.limit
        )
        // Every page is a read of the log (PCI DSS 10.2.1.3), `after` > 0 included: otherwise
        // `after=1` would read it all unrecorded. The record lands after the page it describes,
        // so a reader paging through an unfiltered log gains limit − 1 records per page.
        try await audit.append(
            AuditEvent(
                actor: credential.id, type: "audit.read", outcome: .success, origin: context.remoteAddress,
                detail: "after=\(paging.after) records=\(records.count)"
                    + Self.filters(since: query.get("since"), actor: query.get("actor"), token: query.get("token"))))
        let page = AuditPage(
            records: records.map { record in
                AuditPage.Record(
                    sequence: record.sequence, time: Timestamp.string(record.event.time), actor: record.event.actor,
                    type: record.event.type, outcome: record.event.outcome.rawValue, origin: record.event.origin,
                    objects: record.event.objects, purpose: record.event.purpose, reference: record.event.reference,
                    detail: record.event.detail)
            },
            nextAfter: records.count == paging.limit ? records.last?.sequence : nil)
        return try JSONResponse.make(page)
    }

    /// The filters of a read, for its audit record: what was looked at, not only how much.
    /// (Each was validated or is matched as a literal; the log redacts card-like text anyway.)
    static func filters(since: String?, actor: String?, token: String?) -> String {
        [("since", since), ("actor", actor), ("token", token)].compactMap { name, value in
            value.map { " \(name)=\($0.prefix(64))" }
        }.joined()
    }
}
