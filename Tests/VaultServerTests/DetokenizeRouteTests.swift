import Audit
import CDETestSupport
import CardTokens
import Detokenization
import Foundation
import HTTPTypes
import NIOCore
import Testing
import TokenVault
import VaultServer
import VaultTestSupport

/// The detokenize listener: its routes exist only there, every call is audited, refusals
/// included, and nothing is revealed unless the audit record was written.
@Suite("Detokenize routes")
struct DetokenizeRouteTests {
    /// A generated Luhn-valid PAN that no test tokenizes: sent where a token belongs.
    static let strayPAN: String = {
        var generator = SeededGenerator(seed: 42)
        var card = PANGenerator.card(using: &generator)
        while card.digits.count != 16 { card = PANGenerator.card(using: &generator) }
        return card.digits
    }()

    static let cardPANs = TestCard.published.map(\.digits)

    // MARK: - Two listeners

    @Test("The public listener has no detokenize or audit route; the detokenize listener has no token route")
    func disjointListeners() async throws {
        try await withDetokenizeServer { server in
            let (_, everything) = try await server.key(
                // Every scope a key may hold together (`network` stands alone).
                scopes: Scope.all.filter { $0 != .network }, purposes: DetokenizeServer.purposes, name: "everything")
            let token = try await server.tokenize([.visa])[0]
            let detokenizeBody = ByteBuffer(
                bytes: try JSONCoding.data([
                    "tokens": [token], "purpose": "settlement", "reference": "r", "reveal": "pan",
                ]))
            let (_, records) = try await server.newAuditRecords {
                for auth in [Auth.bearer(everything), .bearer(server.detokenizeKey), .none] {
                    let detokenize = try await server.send(
                        .post, "/v1/detokenize", to: .public, auth: auth, body: detokenizeBody)
                    #expect(detokenize.status == .notFound, "\(detokenize)")
                    #expect(!detokenize.contains(TestCard.visa.digits))
                    for query in ["", "?limit=10"] {
                        let audit = try await server.send(.get, "/v1/audit" + query, to: .public, auth: auth)
                        #expect(audit.status == .notFound, "\(audit)")
                    }
                }
            }
            #expect(records.isEmpty, "the public listener audited nothing because it has no such route")

            let card = ByteBuffer(string: #"{"pan": "4242424242424242", "exp_month": 12, "exp_year": 2031}"#)
            for auth in [Auth.bearer(everything), .bearer(server.tokenizeKey)] {
                let tokenize = try await server.send(.post, "/v1/tokens", auth: auth, body: card)
                #expect(tokenize.status == .notFound, "\(tokenize)")
                let batch = try await server.send(
                    .post, "/v1/tokens/batch", auth: auth, body: ByteBuffer(string: #"{"cards": []}"#))
                #expect(batch.status == .notFound, "\(batch)")
                let metadata = try await server.send(.get, "/v1/tokens/\(token)", auth: auth)
                #expect(metadata.status == .notFound, "\(metadata)")
                let delete = try await server.send(.delete, "/v1/tokens/\(token)", auth: auth)
                #expect(delete.status == .notFound, "\(delete)")
            }
            // The token is still there: the delete above reached no route.
            #expect(try await server.vault.tokens.metadata(of: Token(unchecked: token)).last4 == "1111")
            for listener in [Listener.public, .detokenize] {
                #expect(try await server.send(.get, "/healthz", to: listener, auth: .none).status == .ok)
            }
        }
    }

    // MARK: - Reveals

    @Test("reveal pan: a result per token in order, token null for non-tokens, no CVV")
    func revealPAN() async throws {
        try await withDetokenizeServer { server in
            let cvv = "987"
            let cards = [TestCard.visa.with(cvv: cvv), .mastercard, .amex, .discover]
            let tokens = try await server.tokenize(cards)
            let request = [
                tokens[2], Self.strayPAN, tokens[0], unknownToken, "not a token", tokens[3], tokens[1], tokens[0],
            ]
            let (reply, records) = try await server.newAuditRecords {
                try await server.detokenize(request, reveal: "pan", reference: "settle:2031-01-05")
            }
            #expect(reply.status == .ok, "\(reply)")
            let body = try DetokenizeReply(reply)
            try #require(body.results.count == request.count)
            #expect(
                try body.tokens() == [tokens[2], nil, tokens[0], unknownToken, nil, tokens[3], tokens[1], tokens[0]])
            #expect(
                body.pans == [
                    TestCard.amex.pan, nil, TestCard.visa.pan, nil, nil, TestCard.discover.pan, TestCard.mastercard.pan,
                    TestCard.visa.pan,
                ])
            #expect(body.maskedPans.allSatisfy { $0 == nil })
            #expect(
                body.expiries == [[12, 2031], nil, [12, 2031], nil, nil, [12, 2031], [12, 2031], [12, 2031]])
            #expect(
                body.errorCodes == [
                    nil, "invalid_token", nil, "token_not_found", "invalid_token", nil, nil, nil,
                ])
            // Never a CVV, never the string that was not a token.
            for result in body.results {
                #expect(result.keys.allSatisfy { !$0.contains("cvv") && !$0.contains("cvc") }, "\(result.keys)")
                #expect(result.values.allSatisfy { "\($0)" != cvv })
            }
            #expect(!reply.contains("\"\(cvv)\"") && !reply.contains(":\(cvv)"))
            #expect(!reply.contains(Self.strayPAN))
            #expect(!reply.contains("not a token"))

            try #require(records.count == 1, "\(records)")
            let event = records[0].event
            #expect(event.type == Detokenizer.eventType)
            #expect(event.outcome == .success)
            #expect(event.actor == server.detokenizeCredential.id)
            #expect(!event.origin.isEmpty)
            #expect(event.purpose == "settlement")
            #expect(event.reference == "settle:2031-01-05")
            #expect(event.objects == request.filter { $0.hasPrefix("tok_") })
            #expect(try await !server.renderedAudit().contains(Self.strayPAN))
            #expect(!server.renderedLogs.contains(Self.strayPAN))
        }
    }

    @Test("reveal masked (and the default): BIN and last four only, no full PAN anywhere", arguments: ["masked", nil])
    func revealMasked(reveal: String?) async throws {
        try await withDetokenizeServer { server in
            var generator = SeededGenerator()
            let generated = (0..<20).map { _ in PANGenerator.card(using: &generator) }
            let cards = TestCard.published + generated
            let tokens = try await server.tokenize(cards)
            let reply = try await server.detokenize(tokens, reveal: reveal, purpose: "cardholder_reveal")
            #expect(reply.status == .ok, "\(reply)")
            let body = try DetokenizeReply(reply)
            #expect(try body.tokens() == tokens)
            #expect(body.maskedPans == cards.map(\.masked), "seed \(generator.seed)")
            #expect(body.results.allSatisfy { $0["pan"] == nil })
            #expect(body.expiries == cards.map { [$0.expMonth, $0.expYear] })
            for masked in body.maskedPans.compactMap({ $0 }) {
                // BIN and last four, or the last four alone for a PAN of 12 to 14 digits.
                #expect(masked.filter(\.isWholeNumber).count == (masked.count >= 15 ? 10 : 4))
            }
            let leaked = PANScanner.leaked(Set(cards.map(\.digits)), in: reply.text)
            #expect(leaked.isEmpty, "seed \(generator.seed)")
            let audit = try await server.auditRecords().last?.event
            #expect(audit?.detail?.contains("reveal=masked") == true)
            #expect(audit?.purpose == "cardholder_reveal")
        }
    }

    @Test("A deleted token: token_not_found, echoed")
    func deletedToken() async throws {
        try await withDetokenizeServer { server in
            let tokens = try await server.tokenize([.visa, .visa2])
            try await server.vault.tokens.delete(Token(unchecked: tokens[0]))
            let reply = try await server.detokenize(tokens)
            let body = try DetokenizeReply(reply)
            #expect(try body.tokens() == tokens)
            #expect(body.errorCodes == ["token_not_found", nil])
            #expect(body.pans == [nil, TestCard.visa2.pan])
            #expect(!reply.contains(TestCard.visa.digits))
        }
    }

    // MARK: - Refusals

    @Test("No or an invalid key: 401 with a challenge, audited")
    func unauthenticated() async throws {
        try await withDetokenizeServer { server in
            let token = try await server.tokenize([.visa])[0]
            let id = server.detokenizeCredential.id
            let forged = "vk_\(id)_" + String(repeating: "A", count: 43)
            let attempts: [(Auth, String)] = [
                (.none, "anonymous"), (.bearer("garbage"), "unknown:malformed"),
                (.header("Basic dXNlcjpwYXNz"), "anonymous"), (.bearer(forged), "unknown:\(id)"),
                (.bearer(server.detokenizeKey + "x"), "unknown:malformed"),
            ]
            for (auth, actor) in attempts {
                let (reply, records) = try await server.newAuditRecords {
                    try await server.detokenize([token], auth: auth)
                }
                #expect(reply.status == .unauthorized, "\(reply)")
                #expect(reply.errorCode == "unauthenticated")
                #expect(reply.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                #expect(!reply.contains(TestCard.visa.digits))
                expectOneDeniedDetokenize(records, actor: actor, code: "unauthenticated")
            }
            // A revoked key too.
            try await server.vault.credentials.revoke(id: id)
            let (reply, records) = try await server.newAuditRecords {
                try await server.detokenize([token])
            }
            #expect(reply.status == .unauthorized, "\(reply)")
            expectOneDeniedDetokenize(records, actor: "unknown:\(id)", code: "unauthenticated")
        }
    }

    @Test("A key without scope detokenize: 403 forbidden, audited")
    func wrongScope() async throws {
        try await withDetokenizeServer { server in
            let token = try await server.tokenize([.visa])[0]
            let (walletCredential, walletKey) = try await server.key(scopes: [.wallet])
            let keys = [
                (server.tokenizeKey, CredentialService.id(ofSecret: server.tokenizeKey)!),
                (server.auditKey, server.auditCredential.id), (walletKey, walletCredential.id),
            ]
            for (key, actor) in keys {
                let (reply, records) = try await server.newAuditRecords {
                    try await server.detokenize([token], auth: .bearer(key))
                }
                #expect(reply.status == .forbidden, "\(reply)")
                #expect(reply.errorCode == "forbidden")
                #expect(!reply.contains(TestCard.visa.digits))
                expectOneDeniedDetokenize(records, actor: actor, code: "forbidden")
            }
        }
    }

    @Test("A purpose the key does not list: 403 purpose_not_allowed, audited with purpose and reference")
    func purposeNotAllowed() async throws {
        try await withDetokenizeServer { server in
            let token = try await server.tokenize([.visa])[0]
            let (settlementOnly, settlementKey) = try await server.key(
                scopes: [.detokenize], purposes: ["settlement"])
            let cases: [(Auth, String, String)] = [
                (.standard, "chargeback", server.detokenizeCredential.id),
                (.bearer(settlementKey), "cardholder_reveal", settlementOnly.id),
            ]
            for (auth, purpose, actor) in cases {
                let (reply, records) = try await server.newAuditRecords {
                    try await server.detokenize(
                        [token, Self.strayPAN], purpose: purpose, reference: "case-9", auth: auth)
                }
                #expect(reply.status == .forbidden, "\(reply)")
                #expect(reply.errorCode == "purpose_not_allowed")
                #expect(!reply.contains(TestCard.visa.digits))
                expectOneDeniedDetokenize(
                    records, actor: actor, code: "purpose_not_allowed", purpose: purpose, reference: "case-9")
                #expect(records.first?.event.objects == [token])
            }
            #expect(try await !server.renderedAudit().contains(Self.strayPAN))
        }
    }

    @Test("Over the rate limit: 429 with Retry-After, audited")
    func rateLimited() async throws {
        try await withDetokenizeServer(rateLimit: 0.01) { server in
            let token = try await server.tokenize([.visa])[0]
            let first = try await server.detokenize([token])
            #expect(first.status == .ok, "\(first)")
            let (reply, records) = try await server.newAuditRecords {
                try await server.detokenize([token])
            }
            #expect(reply.status == .tooManyRequests, "\(reply)")
            #expect(reply.errorCode == "rate_limited")
            let retryAfter = try #require(reply.headers[.retryAfter].flatMap { Int($0) }, "\(reply.headers)")
            #expect(retryAfter >= 1)
            #expect(!reply.contains(TestCard.visa.digits))
            expectOneDeniedDetokenize(
                records, actor: server.detokenizeCredential.id, code: "rate_limited", purpose: "settlement",
                reference: "batch-1")
            // The audit route is not rate limited.
            #expect(try await server.auditPage().status == .ok)
        }
    }

    /// A request body that must be refused with `code`.
    struct BadBody: Sendable, CustomTestStringConvertible {
        var name: String
        var body: String
        var code: String
        var status: HTTPResponse.Status = .badRequest
        /// The purpose the audit record may carry (a valid one, once the body was read).
        var auditedPurpose: String?

        var testDescription: String { name }

        static func json(
            tokens: [String] = [unknownToken], purpose: String = "settlement", reference: String = "ref-1",
            reveal: String = "pan"
        ) -> String {
            let object: [String: Any] = [
                "tokens": tokens, "purpose": purpose, "reference": reference, "reveal": reveal,
            ]
            return String(decoding: try! JSONCoding.data(object), as: UTF8.self)
        }

        static let all: [BadBody] = [
            BadBody(name: "truncated JSON", body: #"{"tokens": ["#, code: "invalid_json"),
            BadBody(name: "not JSON", body: "tokens=4111111111111111", code: "invalid_json"),
            BadBody(name: "empty body", body: "", code: "invalid_json"),
            BadBody(name: "no tokens", body: #"{"purpose": "settlement", "reference": "r"}"#, code: "missing_field"),
            BadBody(name: "no purpose", body: #"{"tokens": [], "reference": "r"}"#, code: "missing_field"),
            BadBody(
                name: "no reference", body: #"{"tokens": ["4111111111111111"], "purpose": "settlement"}"#,
                code: "missing_field"),
            BadBody(
                name: "tokens not an array",
                body: #"{"tokens": "4111111111111111", "purpose": "settlement", "reference": "r"}"#,
                code: "invalid_field"),
            BadBody(
                name: "0 tokens", body: json(tokens: []), code: "invalid_batch_size", auditedPurpose: "settlement"),
            BadBody(
                name: "1,001 tokens", body: json(tokens: Array(repeating: unknownToken, count: 1001)),
                code: "invalid_batch_size", auditedPurpose: "settlement"),
            BadBody(name: "reveal full", body: json(reveal: "full"), code: "invalid_reveal"),
            BadBody(name: "reveal PAN", body: json(reveal: "PAN"), code: "invalid_reveal"),
            BadBody(name: "reveal cvv", body: json(reveal: "cvv"), code: "invalid_reveal"),
            BadBody(name: "upper-case purpose", body: json(purpose: "Settlement"), code: "invalid_purpose"),
            BadBody(name: "empty purpose", body: json(purpose: ""), code: "invalid_purpose"),
            BadBody(name: "purpose holding a PAN", body: json(purpose: "x4111111111111111"), code: "invalid_purpose"),
            BadBody(
                name: "reference with a space", body: json(reference: "order 1"), code: "invalid_reference",
                auditedPurpose: "settlement"),
            BadBody(
                name: "empty reference", body: json(reference: ""), code: "invalid_reference",
                auditedPurpose: "settlement"),
            BadBody(
                name: "reference holding a PAN", body: json(reference: "order-5555555555554444"),
                code: "invalid_reference", auditedPurpose: "settlement"),
            BadBody(
                name: "reference that is a PAN", body: json(reference: "378282246310005"),
                code: "invalid_reference", auditedPurpose: "settlement"),
            BadBody(
                name: "body over 256 KiB", body: json(reference: String(repeating: "r", count: 300_000)),
                code: "body_too_large", status: .contentTooLarge),
        ]
    }

    @Test("Bad bodies: 4xx with a code, audited without the reference, no PAN echoed", arguments: BadBody.all)
    func badBody(bad: BadBody) async throws {
        try await withDetokenizeServer { server in
            let (reply, records) = try await server.newAuditRecords {
                try await server.send(.post, "/v1/detokenize", auth: .standard, body: ByteBuffer(string: bad.body))
            }
            #expect(reply.status == bad.status, "\(reply)")
            #expect(reply.errorCode == bad.code, "\(reply)")
            expectOneDeniedDetokenize(
                records, actor: server.detokenizeCredential.id, code: bad.code, purpose: bad.auditedPurpose)
            let pans = Set(Self.cardPANs)
            #expect(PANScanner.leaked(pans, in: reply.text).isEmpty)
            #expect(PANScanner.leaked(pans, in: try await server.renderedAudit()).isEmpty)
            #expect(PANScanner.leaked(pans, in: server.renderedLogs).isEmpty)
        }
    }

    // MARK: - Fail closed

    @Test("The audit log cannot be written: 503 audit_unavailable and no plaintext", arguments: ["pan", "masked"])
    func failClosed(reveal: String) async throws {
        try await withDetokenizeServer(detokenizer: { vault, logger in
            Detokenizer(tokens: vault.tokens, audit: FailingAuditLog(), rateLimiter: nil, logger: logger)
        }) { server in
            let tokens = try await server.tokenize(TestCard.published)
            let (reply, records) = try await server.newAuditRecords {
                try await server.detokenize(tokens + [unknownToken], reveal: reveal)
            }
            #expect(reply.status == .serviceUnavailable, "\(reply)")
            #expect(reply.errorCode == "audit_unavailable")
            #expect(records.isEmpty)
            #expect(!reply.contains("results"))
            for card in TestCard.published {
                #expect(!reply.contains(card.digits))
                #expect(!reply.contains(card.masked))
                #expect(!reply.contains(card.last4))
            }
            #expect(PANScanner.leaked(Set(Self.cardPANs), in: server.renderedLogs).isEmpty)
            // Refusals are still refused.
            #expect(try await server.detokenize(tokens, auth: .none).status == .unauthorized)
        }
    }

    // MARK: - GET /v1/audit

    /// Fills the log with reveals and refusals of the detokenize key; returns its tokens.
    static func activity(_ server: DetokenizeServer) async throws -> [String] {
        let tokens = try await server.tokenize([.visa, .mastercard, .amex])
        for (index, token) in tokens.enumerated() {
            let reply = try await server.detokenize([token, Self.strayPAN], reference: "ref-\(index)")
            #expect(reply.status == .ok)
        }
        _ = try await server.detokenize(tokens, reveal: "masked", purpose: "cardholder_reveal")
        _ = try await server.detokenize([Self.strayPAN], purpose: "chargeback")
        _ = try await server.detokenize(tokens, reference: "order-4111111111111111")
        _ = try await server.detokenize(tokens, auth: .none)
        _ = try await server.detokenize(tokens, auth: .bearer(server.tokenizeKey))
        return tokens
    }

    @Test("GET /v1/audit: 401 without a key, 403 without scope audit:read")
    func auditAccess() async throws {
        try await withDetokenizeServer { server in
            for auth in [Auth.none, .bearer("garbage"), .bearer(server.auditKey + "x")] {
                let reply = try await server.auditPage(auth: auth)
                #expect(reply.status == .unauthorized, "\(reply)")
                #expect(reply.errorCode == "unauthenticated")
                #expect(reply.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
                #expect(!reply.contains("records"))
            }
            for key in [server.detokenizeKey, server.tokenizeKey] {
                let reply = try await server.auditPage(auth: .bearer(key))
                #expect(reply.status == .forbidden, "\(reply)")
                #expect(reply.errorCode == "forbidden")
                #expect(!reply.contains("records"))
            }
            let (_, scoped) = try await server.key(scopes: [.auditRead, .detokenize], purposes: ["settlement"])
            #expect(try await server.auditPage(auth: .bearer(scoped)).status == .ok)
        }
    }

    @Test("GET /v1/audit: the records as stored, never a PAN, and the read itself is audited")
    func auditRecords() async throws {
        try await withDetokenizeServer { server in
            let tokens = try await Self.activity(server)
            let stored = try await server.auditRecords()
            let reply = try await server.auditPage("?limit=1000")
            #expect(reply.status == .ok, "\(reply)")
            let page = try reply.decode(AuditPageReply.self)
            #expect(page.nextAfter == nil)
            #expect(page.records.map(\.sequence) == stored.map(\.sequence))
            for (record, original) in zip(page.records, stored) {
                #expect(record.actor == original.event.actor)
                #expect(record.type == original.event.type)
                #expect(record.outcome == original.event.outcome.rawValue)
                #expect(record.origin == original.event.origin)
                #expect(record.objects == original.event.objects)
                #expect(record.purpose == original.event.purpose)
                #expect(record.reference == original.event.reference)
                #expect(record.detail == original.event.detail)
                #expect(abs(record.time.timeIntervalSince(original.event.time)) < 1)
            }
            let outcomes = Set(page.records.filter { $0.type == Detokenizer.eventType }.map(\.outcome))
            #expect(outcomes == ["success", "denied"])
            #expect(page.records.contains { $0.objects == tokens && $0.purpose == "cardholder_reveal" })
            let pans = Set(Self.cardPANs + [Self.strayPAN])
            #expect(PANScanner.leaked(pans, in: reply.text).isEmpty, "\(reply)")
            #expect(PANScanner.leaked(pans, in: server.renderedLogs).isEmpty)

            let read = try await server.auditRecords().last?.event
            #expect(read?.type == "audit.read")
            #expect(read?.actor == server.auditCredential.id)
            #expect(read?.outcome == .success)
        }
    }

    @Test("GET /v1/audit filters by actor, token and time")
    func auditFilters() async throws {
        try await withDetokenizeServer { server in
            let tokens = try await Self.activity(server)
            let stored = try await server.auditRecords()

            let actor = server.detokenizeCredential.id
            let byActor = try await server.auditPage("?actor=\(actor)&limit=1000").decode(AuditPageReply.self)
            #expect(byActor.records.map(\.sequence) == stored.filter { $0.event.actor == actor }.map(\.sequence))
            #expect(byActor.records.count >= 6)
            #expect(byActor.records.allSatisfy { $0.actor == actor })

            let anonymous = try await server.auditPage("?actor=anonymous").decode(AuditPageReply.self)
            #expect(anonymous.records.map(\.outcome) == ["denied"])

            for token in tokens {
                let byToken = try await server.auditPage("?token=\(token)").decode(AuditPageReply.self)
                #expect(
                    byToken.records.map(\.sequence)
                        == stored.filter { $0.event.objects.contains(token) }.map(\.sequence))
                #expect(byToken.records.allSatisfy { $0.objects.contains(token) })
                #expect(byToken.records.count >= 2)
            }
            let stray = try await server.auditPage("?token=\(Self.strayPAN)").decode(AuditPageReply.self)
            #expect(stray.records.isEmpty)

            let both = try await server.auditPage("?token=\(tokens[0])&actor=anonymous").decode(AuditPageReply.self)
            #expect(
                both.records.map(\.sequence)
                    == stored.filter {
                        $0.event.actor == "anonymous" && $0.event.objects.contains(tokens[0])
                    }.map(\.sequence))

            let future = try await server.auditPage("?since=2100-01-01T00:00:00Z").decode(AuditPageReply.self)
            #expect(future.records.isEmpty)
            let past = try await server.auditPage("?since=2000-01-01T00:00:00Z&limit=1000").decode(AuditPageReply.self)
            #expect(past.records.map(\.sequence).prefix(stored.count) == stored.map(\.sequence)[...])
            // Since a record's own (second-precision) time: exactly the records at or after it.
            let middle = byActor.records[byActor.records.count / 2]
            let since = ISO8601DateFormatter().string(from: middle.time)
            let recent = try await server.auditPage("?since=\(since)&limit=1000").decode(AuditPageReply.self)
            let expected = stored.filter { $0.event.time >= middle.time }.map(\.sequence)
            #expect(recent.records.map(\.sequence).prefix(expected.count) == expected[...])
            #expect(recent.records.contains { $0.sequence == middle.sequence })
            #expect(recent.records.allSatisfy { $0.time >= middle.time })
        }
    }

    @Test("GET /v1/audit pages with limit, after and next_after until exhausted")
    func auditPagination() async throws {
        try await withDetokenizeServer { server in
            _ = try await Self.activity(server)
            let actor = server.detokenizeCredential.id
            let expected = try await server.vault.audit.records(actor: actor).map(\.sequence)
            #expect(expected.count >= 6)

            for limit in [1, 2, 3, expected.count, 1000] {
                var collected = [Int64]()
                var after: Int64?
                var pages = 0
                repeat {
                    let query = "?actor=\(actor)&limit=\(limit)" + (after.map { "&after=\($0)" } ?? "")
                    let reply = try await server.auditPage(query)
                    try #require(reply.status == .ok, "\(reply)")
                    let page = try reply.decode(AuditPageReply.self)
                    #expect(page.records.count <= limit)
                    #expect(page.nextAfter == (page.records.count == limit ? page.records.last?.sequence : nil))
                    collected += page.records.map(\.sequence)
                    after = page.nextAfter
                    pages += 1
                } while after != nil && pages < 100
                #expect(collected == expected, "limit \(limit)")
                #expect(pages == expected.count / limit + 1, "limit \(limit)")
            }

            // Unfiltered: each read adds one record, and paging still ends.
            var collected = [Int64]()
            var after: Int64 = 0
            for _ in 0..<100 {
                let page = try await server.auditPage("?limit=4&after=\(after)").decode(AuditPageReply.self)
                collected += page.records.map(\.sequence)
                guard let next = page.nextAfter else { break }
                after = next
            }
            #expect(collected == Array(1...Int64(collected.count)))
            #expect(collected.count >= expected.count)
        }
    }

    @Test(
        "GET /v1/audit refuses bad parameters",
        arguments: [
            ("?limit=0", "invalid_limit"), ("?limit=1001", "invalid_limit"), ("?limit=ten", "invalid_limit"),
            ("?limit=-1", "invalid_limit"), ("?after=-1", "invalid_after"), ("?after=x", "invalid_after"),
            ("?since=yesterday", "invalid_since"), ("?since=2026-13-01T00:00:00Z", "invalid_since"),
            ("?since=4111111111111111", "invalid_since"),
        ])
    func auditBadParameters(query: String, code: String) async throws {
        try await withDetokenizeServer { server in
            let reply = try await server.auditPage(query)
            #expect(reply.status == .badRequest, "\(reply)")
            #expect(reply.errorCode == code)
            #expect(!reply.contains("4111111111111111"))
        }
    }
}
