import Foundation
import HTTPTypes
import NIOCore
import Testing

/// Every kind of bad input gets a 4xx, the error envelope with a stable code, and a body that
/// does not echo the PAN or CVV that was sent.
@Suite("Validation errors")
struct ValidationTests {
    /// A tokenize body that must be refused.
    struct BadBody: Sendable, CustomTestStringConvertible {
        var name: String
        /// The raw JSON text sent.
        var body: String
        var code: String
        var status: HTTPResponse.Status = .badRequest
        /// Strings the response must not contain (the PAN and CVV as sent).
        var secrets: [String]
        /// A field name the message must mention.
        var field: String?

        var testDescription: String { "\(code): \(name)" }

        /// A card body with `pan`, `exp_month`, `exp_year` and `cvv` given as raw JSON values;
        /// `nil` leaves the field out.
        static func card(
            _ name: String, pan: String? = #""4111111111111111""#, month: String? = "12", year: String? = "2031",
            cvv: String? = nil, extra: String? = nil, code: String, field: String? = nil
        ) -> BadBody {
            let fields = [
                pan.map { #""pan": \#($0)"# }, month.map { #""exp_month": \#($0)"# },
                year.map { #""exp_year": \#($0)"# }, cvv.map { #""cvv": \#($0)"# }, extra,
            ]
            let body = "{" + fields.compactMap { $0 }.joined(separator: ", ") + "}"
            var secrets = [String]()
            for value in [pan, cvv].compactMap({ $0 }) {
                let unquoted = value.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                let digits = unquoted.filter(\.isWholeNumber)
                // A 3-digit CVV is still specific enough to look for in a fixed error text.
                if unquoted.count >= 3 { secrets.append(unquoted) }
                if digits.count >= 6 && digits != unquoted { secrets.append(digits) }
            }
            return BadBody(name: name, body: body, code: code, secrets: secrets, field: field)
        }
    }

    static let expired = Months.previous

    static let badCards: [BadBody] = [
        // invalid_pan
        .card("letter in the PAN", pan: #""4111a11111111111""#, code: "invalid_pan"),
        .card("dots in the PAN", pan: #""4111.1111.1111.1111""#, code: "invalid_pan"),
        .card("plus sign", pan: #""+4111111111111111""#, code: "invalid_pan"),
        .card("newline", pan: #""4111111111111111\n""#, code: "invalid_pan"),
        .card("full-width digits", pan: #""４１１１１１１１１１１１１１１１""#, code: "invalid_pan"),
        .card("Arabic-Indic digits", pan: #""٤١١١١١١١١١١١١١١١""#, code: "invalid_pan"),
        // invalid_pan_length
        .card("empty PAN", pan: #""""#, code: "invalid_pan_length"),
        .card("only spaces and dashes", pan: #"" - - ""#, code: "invalid_pan_length"),
        .card("11 digits", pan: #""41111111113""#, code: "invalid_pan_length"),
        .card("20 digits", pan: #""41111111111111111113""#, code: "invalid_pan_length"),
        .card("200 digits", pan: "\"\(String(repeating: "4111111111", count: 20))\"", code: "invalid_pan_length"),
        // invalid_pan_luhn
        .card("Visa off by one", pan: #""4111111111111112""#, code: "invalid_pan_luhn"),
        .card("Mastercard off by one", pan: #""5555555555554445""#, code: "invalid_pan_luhn"),
        .card("Amex off by one", pan: #""378282246310006""#, code: "invalid_pan_luhn"),
        .card("spaced, off by one", pan: #""4242 4242 4242 4241""#, code: "invalid_pan_luhn"),
        // invalid_exp_month
        .card("month 0", month: "0", code: "invalid_exp_month"),
        .card("month 13", month: "13", code: "invalid_exp_month"),
        .card("month -1", month: "-1", code: "invalid_exp_month"),
        // invalid_exp_year
        .card("two-digit year", year: "31", code: "invalid_exp_year"),
        .card("year 1999", year: "1999", code: "invalid_exp_year"),
        .card("year 2100", year: "2100", code: "invalid_exp_year"),
        .card("year 0", year: "0", code: "invalid_exp_year"),
        // card_expired
        .card("last month", month: "\(expired.month)", year: "\(expired.year)", code: "card_expired"),
        .card("January 2020", month: "1", year: "2020", code: "card_expired"),
        // invalid_cvv
        .card("2-digit CVV", cvv: #""12""#, code: "invalid_cvv"),
        .card("4-digit CVV on a Visa", cvv: #""1234""#, code: "invalid_cvv"),
        .card("letter in the CVV", cvv: #""12a""#, code: "invalid_cvv"),
        .card("space in the CVV", cvv: #"" 123""#, code: "invalid_cvv"),
        .card("empty CVV", cvv: #""""#, code: "invalid_cvv"),
        .card("3-digit CVV on an Amex", pan: #""378282246310005""#, cvv: #""123""#, code: "invalid_cvv"),
        .card("5-digit CVV on an Amex", pan: #""378282246310005""#, cvv: #""12345""#, code: "invalid_cvv"),
        // invalid_token_format
        .card("unknown format", extra: #""format": "fancy""#, code: "invalid_token_format"),
        .card("upper-case format", extra: #""format": "OPAQUE""#, code: "invalid_token_format"),
        .card("empty format", extra: #""format": """#, code: "invalid_token_format"),
        // missing_field
        .card("no pan", pan: nil, code: "missing_field", field: "pan"),
        .card("no exp_month", month: nil, code: "missing_field", field: "exp_month"),
        .card("no exp_year", year: nil, code: "missing_field", field: "exp_year"),
        .card("empty object", pan: nil, month: nil, year: nil, code: "missing_field"),
        // invalid_field
        .card("pan as a number", pan: "4111111111111111", code: "invalid_field", field: "pan"),
        .card("pan as null", pan: "null", code: "invalid_field", field: "pan"),
        .card("pan as an array", pan: #"["4111111111111111"]"#, code: "invalid_field", field: "pan"),
        .card("exp_month as a string", month: #""12""#, code: "invalid_field", field: "exp_month"),
        .card("exp_month as a fraction", month: "12.5", code: "invalid_field", field: "exp_month"),
        .card("exp_month too big for an integer", month: "1e30", code: "invalid_field", field: "exp_month"),
        .card("exp_year too big for a double", year: "1e400", code: "invalid_field", field: "exp_year"),
        .card("exp_year with 25 digits", year: "2031000000000000000000000", code: "invalid_field", field: "exp_year"),
        .card("exp_year as a string", year: #""2031""#, code: "invalid_field", field: "exp_year"),
        .card("cvv as a number", cvv: "123", code: "invalid_field", field: "cvv"),
        .card("format as a number", extra: #""format": 1"#, code: "invalid_field", field: "format"),
        .card("dedupe as a string", extra: #""dedupe": "yes""#, code: "invalid_field", field: "dedupe"),
    ]

    /// Checks an error reply: status, code, envelope, and no secret in it.
    static func expectError(
        _ reply: Reply, status: HTTPResponse.Status = .badRequest, code: String, secrets: [String] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(reply.status == status, "\(reply)", sourceLocation: sourceLocation)
        #expect((400..<500).contains(reply.status.code), sourceLocation: sourceLocation)
        #expect(reply.errorCode == code, "\(reply)", sourceLocation: sourceLocation)
        #expect(reply.errorMessage?.isEmpty == false, sourceLocation: sourceLocation)
        #expect(reply.headers[.contentType]?.hasPrefix("application/json") == true, sourceLocation: sourceLocation)
        for secret in secrets {
            #expect(!reply.contains(secret), "the response echoes \(secret)", sourceLocation: sourceLocation)
        }
    }

    @Test("POST /v1/tokens refuses bad card data", arguments: badCards)
    func badCard(_ bad: BadBody) async throws {
        try await withServer { server in
            let reply = try await server.post("/v1/tokens", text: bad.body)
            Self.expectError(reply, status: bad.status, code: bad.code, secrets: bad.secrets)
            if let field = bad.field {
                #expect(reply.errorMessage?.contains(field) == true, "\(reply)")
            }
        }
    }

    @Test("The same bad cards fail alone inside a batch, with the same codes")
    func badCardsInBatch() async throws {
        try await withServer { server in
            let bodies =
                Self.badCards.map(\.body) + [#"{"pan": "4111111111111111", "exp_month": 12, "exp_year": 2031}"#]
            let reply = try await server.post(
                "/v1/tokens/batch", text: #"{"cards": [\#(bodies.joined(separator: ", "))]}"#)
            #expect(reply.status == .ok, "\(reply)")
            let results = try reply.decode(BatchReply.self).results
            try #require(results.count == bodies.count)
            for (bad, result) in zip(Self.badCards, results) {
                #expect(result.errorCode == bad.code, "\(bad.name): \(result)")
            }
            #expect(results.last?.token?.last4 == "1111")
            // The issued token and fingerprint are random and may contain a short secret such as
            // "12a" by chance: look for echoes in the rest of the body.
            var rest = reply.text
            if let issued = results.last?.token {
                rest = rest.replacingOccurrences(of: issued.token, with: "")
                    .replacingOccurrences(of: issued.fingerprint, with: "")
            }
            for secret in Self.badCards.flatMap(\.secrets) where secret != "4111111111111111" {
                #expect(!rest.contains(secret), "the response echoes \(secret)")
            }
            #expect(!reply.contains("4111111111111111"))
        }
    }

    @Test(
        "Bodies that are not JSON: 400 invalid_json",
        arguments: ["{", "not json", "", #"{"pan": "4111111111111111""#, "\u{FEFF}{}}", "{} {}"])
    func invalidJSON(body: String) async throws {
        try await withServer { server in
            for path in ["/v1/tokens", "/v1/tokens/batch"] {
                let reply = try await server.post(path, text: body)
                Self.expectError(reply, code: "invalid_json", secrets: ["4111111111111111"])
            }
        }
    }

    @Test(
        "JSON of the wrong shape or with broken strings: a 4xx with the envelope, never a 5xx",
        arguments: [
            "[]", "null", "42", #""4111111111111111""#, "true", #"[{"pan": "4111111111111111"}]"#,
            #"{"pan": "4111111111111111\ud800", "exp_month": 12, "exp_year": 2031}"#,
            #"{"pan": "4111111111111111", "exp_month": 12, "exp_year": 2031, "cvv": "\udc00"}"#,
        ])
    func wrongShape(body: String) async throws {
        try await withServer { server in
            for path in ["/v1/tokens", "/v1/tokens/batch"] {
                let reply = try await server.post(path, text: body)
                #expect(reply.status == .badRequest, "\(path) \(body): \(reply)")
                #expect(
                    ["invalid_json", "invalid_field", "invalid_request", "missing_field"].contains(
                        reply.errorCode ?? ""), "\(reply)")
                #expect(!reply.contains("4111111111111111"))
            }
        }
    }

    @Test("A body over 16 KiB on POST /v1/tokens: 413 body_too_large", arguments: Transport.allCases)
    func singleBodyTooLarge(transport: Transport) async throws {
        try await withServer(transport: transport) { server in
            let card = #"{"pan": "4111111111111111", "exp_month": 12, "exp_year": 2031, "cvv": "123", "note": ""#
            // Exactly at the limit is read; one byte more is not.
            let fits = card + String(repeating: "x", count: 16 * 1024 - card.utf8.count - 2) + #""}"#
            #expect(fits.utf8.count == 16 * 1024)
            let accepted = try await server.post("/v1/tokens", text: fits)
            #expect(accepted.status == .created, "\(accepted)")

            let over = card + String(repeating: "x", count: 16 * 1024 - card.utf8.count - 1) + #""}"#
            Self.expectError(
                try await server.post("/v1/tokens", text: over), status: .contentTooLarge, code: "body_too_large",
                secrets: ["4111111111111111"])

            let huge = card + String(repeating: "x", count: 200 * 1024) + #""}"#
            Self.expectError(
                try await server.post("/v1/tokens", text: huge), status: .contentTooLarge, code: "body_too_large",
                secrets: ["4111111111111111"])
            // The server still answers afterwards.
            #expect(try await server.send(.get, "/healthz", auth: .none).status == .ok)
        }
    }

    @Test("A batch body over 1 MiB: 413 body_too_large", arguments: Transport.allCases)
    func batchBodyTooLarge(transport: Transport) async throws {
        try await withServer(transport: transport) { server in
            let padding = String(repeating: " ", count: 1100)
            let card = #"{"pan": "4111111111111111", "exp_month": 12, "exp_year": 2031\#(padding)}"#
            let body = #"{"cards": [\#(Array(repeating: card, count: 1000).joined(separator: ", "))]}"#
            #expect(body.utf8.count > 1 << 20)
            Self.expectError(
                try await server.post("/v1/tokens/batch", text: body), status: .contentTooLarge,
                code: "body_too_large", secrets: ["4111111111111111"])
        }
    }

    @Test("A batch must hold 1 to 1,000 cards: 400 invalid_batch_size", arguments: [0, 1001])
    func batchSize(count: Int) async throws {
        try await withServer { server in
            let card = #"{"pan": "4111111111111111", "exp_month": 12, "exp_year": 2031}"#
            let body = #"{"cards": [\#(Array(repeating: card, count: count).joined(separator: ","))]}"#
            Self.expectError(
                try await server.post("/v1/tokens/batch", text: body), code: "invalid_batch_size",
                secrets: ["4111111111111111"])
        }
    }

    @Test("A batch body without a cards array: 400 missing_field or invalid_field")
    func batchShape() async throws {
        try await withServer { server in
            Self.expectError(try await server.post("/v1/tokens/batch", text: "{}"), code: "missing_field")
            for cards in [#"{}"#, "null", #""4111111111111111""#, "42"] {
                Self.expectError(
                    try await server.post("/v1/tokens/batch", text: #"{"cards": \#(cards)}"#), code: "invalid_field",
                    secrets: ["4111111111111111"])
            }
        }
    }

    @Test(
        "A path that is not a token: 400 invalid_token, without echoing it",
        arguments: [
            "not-a-token", "tok_short", "tok_AAAAAAAAAAAAAAAAAAAAA!", "tok_AAAAAAAAAAAAAAAAAAAAAAA",
            "TOK_AAAAAAAAAAAAAAAAAAAAAA",
            "4111111111111111", "378282246310005", "4111-1111-1111-1111", "41111111111", "batch2",
        ])
    func invalidToken(path: String) async throws {
        try await withServer { server in
            for method in [HTTPRequest.Method.get, .delete] {
                let reply = try await server.send(method, "/v1/tokens/\(path)")
                Self.expectError(reply, code: "invalid_token", secrets: [path])
            }
        }
    }

    @Test("Unknown routes and methods: 404 not_found and 405 method_not_allowed, in the envelope")
    func unknownRoutes() async throws {
        try await withServer { server in
            let notFound = try await server.send(.get, "/v1/cards")
            Self.expectError(notFound, status: .notFound, code: "not_found")
            let pan = try await server.send(.get, "/v1/tokens/4111111111111111/pan")
            Self.expectError(pan, status: .notFound, code: "not_found", secrets: ["4111111111111111"])
            let detokenize = try await server.post("/v1/detokenize", text: #"{"token": "\#(unknownToken)"}"#)
            Self.expectError(detokenize, status: .notFound, code: "not_found")

            let wrongMethods: [(HTTPRequest.Method, String)] = [
                (.put, "/v1/tokens"), (.get, "/v1/tokens"), (.patch, "/v1/tokens/\(unknownToken)"),
                (.get, "/v1/tokens/batch"), (.delete, "/v1/tokens/batch"),
            ]
            for (method, path) in wrongMethods {
                let reply = try await server.send(method, path)
                #expect((400..<500).contains(reply.status.code), "\(method) \(path): \(reply)")
                #expect(["method_not_allowed", "not_found"].contains(reply.errorCode ?? ""), "\(reply)")
            }
        }
    }
}
