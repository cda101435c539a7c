import CardTokens
import Foundation
import HTTPTypes
import Testing
import VaultTestSupport

/// The happy paths of every public route.
@Suite("Token routes", .timeLimit(.minutes(10)))
struct TokenRouteTests {
    @Test("GET /healthz answers 200 without a credential")
    func health() async throws {
        try await withServer { server in
            let reply = try await server.send(.get, "/healthz", auth: .none)
            #expect(reply.status == .ok)
            let withBadKey = try await server.send(.get, "/healthz", auth: .bearer("nope"))
            #expect(withBadKey.status == .ok)
        }
    }

    @Test("POST /v1/tokens returns 201 with an opaque token and the card's metadata", arguments: TestCard.published)
    func tokenizeOpaque(card: TestCard) async throws {
        try await withServer { server in
            let (reply, window) = try await TimeWindow.measuring { try await server.tokenize(card) }
            #expect(reply.status == .created, "\(reply)")
            #expect(reply.headers[.contentType]?.hasPrefix("application/json") == true)
            #expect(!reply.contains(card.pan))
            let token = try reply.decode(TokenReply.self)
            #expect(token.token.hasPrefix("tok_"))
            #expect(token.token.count == 4 + 30)
            #expect(Token.format(of: token.token) == .opaque)
            #expect(token.format == "opaque")
            #expect(token.bin == card.bin)
            #expect(token.last4 == card.last4)
            #expect(token.brand == card.brand.rawValue)
            #expect(token.expMonth == card.expMonth)
            #expect(token.expYear == card.expYear)
            #expect(!token.fingerprint.isEmpty)
            #expect(token.fingerprint.allSatisfy { $0.isHexDigit })
            #expect(window.contains(token.createdAt), "created at \(token.createdAt), the call ran \(window)")
            #expect(token.cvvHeld == false)
            #expect(token.cvvExpiresAt == nil)
            // The key is absent, not null, when no CVV is held.
            #expect(!reply.contains("cvv_expires_at"))
        }
    }

    @Test("The metadata route returns what tokenize returned")
    func metadata() async throws {
        try await withServer { server in
            let created = try await server.tokenized(.mastercard)
            let reply = try await server.send(.get, "/v1/tokens/\(created.token)")
            #expect(reply.status == .ok, "\(reply)")
            let read = try reply.decode(TokenReply.self)
            #expect(read == created)
            #expect(!reply.contains(TestCard.mastercard.pan))
        }
    }

    @Test("A CVV given at tokenization is held: cvv_held and cvv_expires_at, in both responses")
    func cvvHeld() async throws {
        try await withServer(cvvTimeToLive: 3600) { server in
            for card in [TestCard.visa.with(cvv: "123"), TestCard.amex.with(cvv: "1234")] {
                let (reply, window) = try await TimeWindow.measuring { try await server.tokenize(card) }
                #expect(reply.status == .created, "\(reply)")
                #expect(!reply.contains("\"\(card.cvv!)\""))
                let created = try reply.decode(TokenReply.self)
                #expect(created.cvvHeld)
                let expiresAt = try #require(created.cvvExpiresAt)
                #expect(window.contains(expiresAt, offset: 3600), "expires at \(expiresAt), the call ran \(window)")

                let read = try await server.send(.get, "/v1/tokens/\(created.token)").decode(TokenReply.self)
                #expect(read.cvvHeld)
                #expect(read.cvvExpiresAt == created.cvvExpiresAt)
            }
        }
    }

    @Test("After its time to live, a CVV is no longer reported as held")
    func cvvExpires() async throws {
        try await withServer(cvvTimeToLive: 0.3) { server in
            let created = try await server.tokenized(TestCard.visa.with(cvv: "123"))
            #expect(created.cvvHeld)
            let expiresAt = try #require(created.cvvExpiresAt)
            // Read until the CVV is reported gone (its key goes at the end of its epoch plus the
            // time to live): polled, not slept, so a slow machine only makes this take longer.
            // A CVV that never expires fails by the suite's time limit.
            var read = try await server.send(.get, "/v1/tokens/\(created.token)").decode(TokenReply.self)
            while read.cvvHeld {
                #expect(read.cvvExpiresAt == created.cvvExpiresAt)
                try await Task.sleep(for: .milliseconds(20))
                read = try await server.send(.get, "/v1/tokens/\(created.token)").decode(TokenReply.self)
            }
            #expect(Date() >= expiresAt, "reported gone before its time to live ran out")
            #expect(read.cvvExpiresAt == nil)
        }
    }

    @Test("Spaces and dashes in the PAN are ignored: same card, same fingerprint")
    func formattedPAN() async throws {
        try await withServer { server in
            let plain = try await server.tokenized(.visa)
            let spaced = try await server.tokenized(TestCard(pan: "4111 1111-1111 1111", brand: .visa))
            #expect(spaced.bin == "411111")
            #expect(spaced.last4 == "1111")
            #expect(spaced.fingerprint == plain.fingerprint)
            #expect(spaced.token != plain.token)
        }
    }

    @Test(
        "format numeric: as long as the PAN, keeps BIN and last four, fails Luhn",
        arguments: TestCard.published)
    func numeric(card: TestCard) async throws {
        try await withServer { server in
            for _ in 0..<5 {
                let reply = try await server.tokenize(card, format: "numeric")
                #expect(reply.status == .created, "\(reply)")
                let token = try reply.decode(TokenReply.self)
                #expect(token.format == "numeric")
                #expect(token.token.count == card.digits.count)
                #expect(token.token.allSatisfy { $0.isWholeNumber })
                #expect(token.token.hasPrefix(card.bin))
                #expect(token.token.hasSuffix(card.last4))
                #expect(token.token != card.digits)
                #expect(!TestLuhn.passes(token.token))
                #expect(Token.format(of: token.token) == .numeric)
                #expect(token.bin == card.bin)
                #expect(token.last4 == card.last4)
                #expect(token.brand == card.brand.rawValue)

                let read = try await server.send(.get, "/v1/tokens/\(token.token)")
                #expect(read.status == .ok, "\(read)")
                #expect(try read.decode(TokenReply.self) == token)
            }
        }
    }

    @Test("dedupe returns the existing token with 200; without dedupe a new token is made")
    func dedupe() async throws {
        try await withServer { server in
            let first = try await server.tokenize(.visa2, dedupe: true)
            #expect(first.status == .created, "\(first)")
            let original = try first.decode(TokenReply.self)

            let again = try await server.tokenize(.visa2, dedupe: true)
            #expect(again.status == .ok, "\(again)")
            let deduped = try again.decode(TokenReply.self)
            #expect(deduped.token == original.token)
            #expect(deduped.fingerprint == original.fingerprint)

            let spaced = try await server.tokenize(TestCard(pan: "4242-4242-4242-4242", brand: .visa), dedupe: true)
            #expect(spaced.status == .ok, "\(spaced)")
            #expect(try spaced.decode(TokenReply.self).token == original.token)

            let fresh = try await server.tokenize(.visa2)
            #expect(fresh.status == .created, "\(fresh)")
            let other = try fresh.decode(TokenReply.self)
            #expect(other.token != original.token)
            #expect(other.fingerprint == original.fingerprint)

            let another = try await server.tokenize(.mastercard, dedupe: true)
            #expect(another.status == .created, "\(another)")
            #expect(try another.decode(TokenReply.self).token != original.token)
        }
    }

    @Test("dedupe with format numeric returns the existing numeric token")
    func dedupeNumeric() async throws {
        try await withServer { server in
            let first = try await server.tokenized(.discover, format: "numeric", dedupe: true)
            let again = try await server.tokenize(.discover, format: "numeric", dedupe: true)
            #expect(again.status == .ok, "\(again)")
            #expect(try again.decode(TokenReply.self).token == first.token)
        }
    }

    @Test("DELETE answers 204; afterwards GET and DELETE answer 404 token_not_found")
    func delete() async throws {
        try await withServer { server in
            for format in ["opaque", "numeric"] {
                let created = try await server.tokenized(TestCard.visa.with(cvv: "321"), format: format)
                let deleted = try await server.send(.delete, "/v1/tokens/\(created.token)")
                #expect(deleted.status == .noContent, "\(deleted)")
                #expect(deleted.body.isEmpty)

                let read = try await server.send(.get, "/v1/tokens/\(created.token)")
                #expect(read.status == .notFound, "\(read)")
                #expect(read.errorCode == "token_not_found")

                let again = try await server.send(.delete, "/v1/tokens/\(created.token)")
                #expect(again.status == .notFound, "\(again)")
                #expect(again.errorCode == "token_not_found")
            }
            // Other tokens are untouched.
            let kept = try await server.tokenized(.mastercard)
            #expect(try await server.send(.get, "/v1/tokens/\(kept.token)").status == .ok)
        }
    }

    @Test(
        "A well-formed token the vault never issued is 404 token_not_found",
        arguments: [unknownToken, "4111110000001112"])
    func unknown(token: String) async throws {
        try await withServer { server in
            for method in [HTTPRequest.Method.get, .delete] {
                let reply = try await server.send(method, "/v1/tokens/\(token)")
                #expect(reply.status == .notFound, "\(reply)")
                #expect(reply.errorCode == "token_not_found")
            }
        }
    }

    @Test("The current month is not expired yet")
    func expiresThisMonth() async throws {
        try await withServer { server in
            let (year, month) = Months.current
            let card = TestCard(pan: TestCard.visa.pan, expMonth: month, expYear: year, brand: .visa)
            let reply = try await server.tokenize(card)
            #expect(reply.status == .created, "\(reply)")
        }
    }
}
