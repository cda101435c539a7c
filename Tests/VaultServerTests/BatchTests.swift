import CardTokens
import Foundation
import HTTPTypes
import Testing
import VaultTestSupport

/// `POST /v1/tokens/batch`: a result per card, in order; bad cards fail alone.
@Suite("Batch tokenization")
struct BatchTests {
    @Test("1,000 valid cards: 1,000 tokens, in request order")
    func thousand() async throws {
        try await withServer { server in
            var generator = SeededGenerator()
            let cards = (0..<1000).map { index in
                PANGenerator.card(withCVV: index % 3 == 0, using: &generator)
            }
            let formats = cards.indices.map { $0 % 4 == 1 ? "numeric" : "opaque" }
            let body = ["cards": zip(cards, formats).map { card, format in card.json(format: format) }]
            let reply = try await server.post("/v1/tokens/batch", json: body)
            #expect(reply.status == .ok, "seed \(generator.seed): \(reply)")
            let results = try reply.decode(BatchReply.self).results
            try #require(results.count == cards.count)
            var tokens = Set<String>()
            for (index, (card, result)) in zip(cards, results).enumerated() {
                let token = try #require(result.token, "item \(index), seed \(generator.seed): \(result)")
                #expect(token.last4 == card.last4, "item \(index)")
                #expect(token.bin == card.bin, "item \(index)")
                #expect(token.brand == card.brand.rawValue, "item \(index)")
                #expect(token.expMonth == card.expMonth && token.expYear == card.expYear, "item \(index)")
                #expect(token.format == formats[index], "item \(index)")
                #expect(token.cvvHeld == (card.cvv != nil), "item \(index)")
                if formats[index] == "numeric" {
                    #expect(token.token.count == card.pan.count && !TestLuhn.passes(token.token))
                }
                tokens.insert(token.token)
            }
            #expect(tokens.count == cards.count)
            let leaked = PANScanner.leaked(Set(cards.map(\.pan)), in: reply.text)
            #expect(leaked.isEmpty, "seed \(generator.seed): the response echoes \(leaked.count) PANs")
            // Every token resolves.
            for index in stride(from: 0, to: results.count, by: 97) {
                let token = try #require(results[index].token)
                let read = try await server.send(.get, "/v1/tokens/\(token.token)")
                #expect(try read.decode(TokenReply.self).last4 == cards[index].last4)
            }
        }
    }

    @Test("A batch of one")
    func single() async throws {
        try await withServer { server in
            let reply = try await server.post(
                "/v1/tokens/batch", json: ["cards": [TestCard.amex.with(cvv: "1234").json()]])
            #expect(reply.status == .ok, "\(reply)")
            let results = try reply.decode(BatchReply.self).results
            #expect(results.count == 1)
            #expect(results.first?.token?.brand == "amex")
            #expect(results.first?.token?.cvvHeld == true)
        }
    }

    @Test("Bad items get their own error; the others succeed")
    func mixed() async throws {
        try await withServer { server in
            let (year, month) = Months.previous
            let items: [(json: Any, expected: String?)] = [
                (TestCard.visa.json(), nil),
                (TestCard(pan: "4111111111111112", brand: .visa).json(), "invalid_pan_luhn"),
                (TestCard.mastercard.with(cvv: "999").json(), nil),
                (["pan": "5555555555554444", "exp_month": 12] as [String: Any], "missing_field"),
                (TestCard.amex.json(format: "numeric"), nil),
                (["pan": 4_242_424_242_424_242, "exp_month": 12, "exp_year": 2031] as [String: Any], "invalid_field"),
                (["pan": "6011111111111117", "exp_month": "12", "exp_year": 2031] as [String: Any], "invalid_field"),
                (
                    TestCard(pan: "4242424242424242", expMonth: month, expYear: year, brand: .visa).json(),
                    "card_expired"
                ),
                (TestCard.discover.json(), nil),
                (TestCard.amex.with(cvv: "123").json(), "invalid_cvv"),
                (TestCard.visa2.json(format: "sparkly"), "invalid_token_format"),
                (42, "invalid_field"),
                ("4111111111111111", "invalid_field"),
                (TestCard(pan: "4111 1111 1111 1111", brand: .visa).json(), nil),
                (TestCard(pan: "41111", brand: .visa).json(), "invalid_pan_length"),
                (TestCard(pan: "4111x111111111111", brand: .visa).json(), "invalid_pan"),
                (TestCard(pan: "4111111111111111", expMonth: 13, brand: .visa).json(), "invalid_exp_month"),
                (TestCard(pan: "4111111111111111", expYear: 31, brand: .visa).json(), "invalid_exp_year"),
                (TestCard.visa.json(), nil),
            ]
            let reply = try await server.post("/v1/tokens/batch", json: ["cards": items.map { $0.json }])
            #expect(reply.status == .ok, "\(reply)")
            let results = try reply.decode(BatchReply.self).results
            try #require(results.count == items.count)
            for (index, (item, result)) in zip(items, results).enumerated() {
                if let expected = item.expected {
                    #expect(result.errorCode == expected, "item \(index): \(result)")
                } else {
                    let token = try #require(result.token, "item \(index): \(result)")
                    let read = try await server.send(.get, "/v1/tokens/\(token.token)")
                    #expect(read.status == .ok, "item \(index): \(read)")
                }
            }
            #expect(results[2].token?.cvvHeld == true)
            #expect(results[4].token?.format == "numeric")
            #expect(results[4].token?.token.count == 15)
            #expect(results[13].token?.last4 == "1111")
            #expect(results[0].token?.token != results[18].token?.token)
            for secret in [
                "4111111111111111", "4111111111111112", "5555555555554444", "4242424242424242", "6011111111111117",
                "378282246310005", "4111x111111111111",
            ] {
                #expect(!reply.contains(secret), "the response echoes \(secret)")
            }
        }
    }

    @Test("Values Foundation's decoder refuses with its own error fail alone, not the whole batch")
    func undecodableValues() async throws {
        try await withServer { server in
            let good = #"{"pan": "4111111111111111", "exp_month": 12, "exp_year": 2031}"#
            let bad = [
                #"{"pan": "4242424242424242", "exp_month": 12.5, "exp_year": 2031}"#,
                #"{"pan": "4242424242424242", "exp_month": 12, "exp_year": 1e400}"#,
                #"{"pan": "4242424242424242", "exp_month": 99999999999999999999, "exp_year": 2031}"#,
                #"{"pan": "4242424242424242\ud800", "exp_month": 12, "exp_year": 2031}"#,
                #"{"pan": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvv": "\udc00"}"#,
            ]
            let body = #"{"cards": [\#(good), \#(bad.joined(separator: ", ")), \#(good)]}"#
            let reply = try await server.post("/v1/tokens/batch", text: body)
            #expect(reply.status == .ok, "\(reply)")
            let results = try reply.decode(BatchReply.self).results
            try #require(results.count == bad.count + 2)
            #expect(results.first?.token?.last4 == "1111")
            #expect(results.last?.token?.last4 == "1111")
            for (index, result) in results.dropFirst().dropLast().enumerated() {
                #expect(result.errorCode == "invalid_field", "item \(index + 1): \(result)")
            }
            if case .error(let error) = results[1] {
                #expect(error.message.contains("exp_month"), "\(error)")
            }
            for secret in ["4242424242424242", "12.5", "1e400", "99999999999999999999"] {
                #expect(!reply.contains(secret), "the response echoes \(secret)")
            }
        }
    }

    @Test("Error items name the field and its position, never its value")
    func errorMessages() async throws {
        try await withServer { server in
            let items: [Any] = [
                TestCard.visa.json(), ["pan": "5555555555554444", "exp_month": 12] as [String: Any],
                ["pan": 5_555_555_555_554_444, "exp_month": 12, "exp_year": 2031] as [String: Any],
            ]
            let reply = try await server.post("/v1/tokens/batch", json: ["cards": items])
            let results = try reply.decode(BatchReply.self).results
            guard case .error(let missing) = results[1], case .error(let wrongType) = results[2] else {
                Issue.record("expected errors: \(results)")
                return
            }
            #expect(missing.message.contains("exp_year"), "\(missing)")
            #expect(wrongType.message.contains("pan"), "\(wrongType)")
            #expect(!wrongType.message.contains("5555"))
        }
    }

    @Test("dedupe inside a batch and across batches returns the existing token")
    func dedupe() async throws {
        try await withServer { server in
            let first = try await server.tokenized(.mastercard)
            let cards = [TestCard.mastercard.json(dedupe: true), TestCard.visa.json(), TestCard.mastercard.json()]
            let reply = try await server.post("/v1/tokens/batch", json: ["cards": cards])
            let results = try reply.decode(BatchReply.self).results
            #expect(results[0].token?.token == first.token)
            #expect(results[2].token?.token != first.token)
            #expect(results[2].token?.fingerprint == first.fingerprint)
        }
    }
}
