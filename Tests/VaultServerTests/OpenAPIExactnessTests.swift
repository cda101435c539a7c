import Foundation
import HTTPTypes
import NIOCore
import Testing
import VaultTestSupport

/// Finding 20: `docs/openapi.yaml` must be neither looser nor stricter than the service: ids and
/// card numbers have the patterns the service issues and accepts, examples obey them, a batch
/// entry may be anything (it fails alone), and a `null` for an optional field is refused as
/// the document's non-nullable types say.
@Suite("OpenAPI document is exact")
struct OpenAPIExactnessTests {
    /// The lines nested under `keys`, each a mapping key one level (two spaces) deeper than the
    /// one before, starting at the top level.
    static func block(_ keys: [String]) throws -> [Substring] {
        var lines = ArraySlice(try OpenAPITests.document())
        for (depth, key) in keys.enumerated() {
            let indent = String(repeating: " ", count: depth * 2)
            let start = try #require(lines.firstIndex { $0 == "\(indent)\(key):" }, "no \(keys[...depth])")
            let rest = lines[(start + 1)...]
            let end =
                rest.firstIndex { line in
                    !line.trimmingCharacters(in: .whitespaces).isEmpty
                        && line.prefix { $0 == " " }.count <= depth * 2
                } ?? rest.endIndex
            lines = lines[(start + 1)..<end]
        }
        return Array(lines)
    }

    /// The first `pattern:` within `keys`' block, unquoted.
    static func pattern(_ keys: [String]) throws -> String {
        let line = try #require(
            try block(keys).first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("pattern: ") },
            "\(keys) has no pattern")
        let quoted = line.trimmingCharacters(in: .whitespaces).dropFirst("pattern: ".count)
        let text = quoted.dropFirst().dropLast().replacingOccurrences(of: #"\\"#, with: #"\"#)
        _ = try Regex(text)
        return text
    }

    /// Whether `pattern` (an anchored JSON Schema pattern) matches `value`.
    static func matches(_ value: String, _ pattern: String) -> Bool {
        guard let regex = try? Regex(pattern) else { return false }
        return value.firstMatch(of: regex) != nil
    }

    static let tokenPattern = ["components", "parameters", "Token"]
    static let walletPattern = ["components", "parameters", "Wallet"]
    static let panPattern = ["components", "schemas", "CardRequest", "properties", "pan"]

    @Test("Finding 20: every token and resource id written in the document matches the documented pattern")
    func finding20ExamplesMatchPatterns() throws {
        let text = try OpenAPITests.document().joined(separator: "\n")
        let token = try Self.pattern(Self.tokenPattern)
        let patterns: [(prefix: String, pattern: String)] = [
            ("tok", token), ("wal", try Self.pattern(Self.walletPattern)),
            ("card", try Self.pattern(["components", "schemas", "TopUpRequest", "properties", "card_id"])),
            ("tu", try Self.pattern(["components", "schemas", "TopUp", "properties", "id"])),
            ("tr", try Self.pattern(["components", "schemas", "Transfer", "properties", "id"])),
        ]
        var checked = 0
        for (prefix, pattern) in patterns {
            // An id: the prefix, `_` and 20 or more id characters (not `card_id` or `card_expired`).
            for match in text.matches(of: try Regex("\\b\(prefix)_[A-Za-z0-9_-]{20,}")) {
                let value = String(text[match.range])
                checked += 1
                #expect(Self.matches(value, pattern), "\(value) breaks the documented \(prefix) pattern")
            }
        }
        #expect(checked >= 10, "the scan found only \(checked) ids")
        // Numeric token examples: not Luhn-valid, so never a card number.
        for example in ["4111118235091112"] {
            #expect(Self.matches(example, token))
        }
    }

    @Test("Finding 20: the id patterns are the same wherever an id is named")
    func finding20PatternsAgree() throws {
        let token = try Self.block(Self.tokenPattern).first { $0.contains("pattern:") }
        let wallet = try Self.block(Self.walletPattern).first { $0.contains("pattern:") }
        for keys in [
            ["components", "schemas", "AddCardRequest", "properties", "token"],
            ["components", "schemas", "TokenMetadata", "properties", "token"],
            ["components", "schemas", "CardOnFile", "properties", "token"],
        ] {
            let line = try Self.block(keys).first { $0.contains("pattern:") }
            #expect(
                line?.trimmingCharacters(in: .whitespaces) == token?.trimmingCharacters(in: .whitespaces), "\(keys)")
        }
        for field in ["from_wallet", "to_wallet"] {
            let line = try Self.block(["components", "schemas", "TransferRequest", "properties", field]).first {
                $0.contains("pattern:")
            }
            #expect(
                line?.trimmingCharacters(in: .whitespaces) == wallet?.trimmingCharacters(in: .whitespaces), "\(field)")
        }
        // A batch entry is anything: an invalid one fails alone instead of failing the request.
        let items = try Self.block(["components", "schemas", "BatchRequest", "properties", "cards", "items"])
        #expect(items.contains { $0.contains("anyOf:") } && items.contains { $0.contains("- {}") }, "\(items)")
    }

    @Test("Finding 20: what the service issues matches the documented token, wallet and card id patterns")
    func finding20IssuedIDsMatch() async throws {
        let token = try Self.pattern(Self.tokenPattern)
        let wallet = try Self.pattern(Self.walletPattern)
        let card = try Self.pattern(["components", "schemas", "TopUpRequest", "properties", "card_id"])
        let transfer = try Self.pattern(["components", "schemas", "Transfer", "properties", "id"])
        try await withServer(wallets: WalletSetup(authorizer: FakeAuthorizer())) { server in
            for format in ["opaque", "numeric"] {
                let issued = try await server.tokenized(.mastercard, format: format).token
                #expect(Self.matches(issued, token), "\(format) token \(issued)")
            }
            let first = try await server.createWallet()
            let second = try await server.createWallet()
            #expect(Self.matches(first.id, wallet), "\(first.id)")
            let saved = try await server.addCard(.visa, to: first.id)
            #expect(Self.matches(saved.id, card), "\(saved.id)")
            #expect(Self.matches(saved.token, token), "\(saved.token)")
            _ = try await server.topUp(first.id, card: saved.id, amount: 500)
            let moved = try await server.transfer(from: first.id, to: second.id, amount: 100)
            #expect(Self.matches(try moved.decode(TransferReply.self).id, transfer), "\(moved)")
        }
    }

    @Test("Finding 20: the pan pattern accepts exactly what the service reads as a card number of the right length")
    func finding20PANPattern() async throws {
        let pattern = try Self.pattern(Self.panPattern)
        let accepted = [
            "4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", " 4111111111111111 ", "378282246310005",
            "4111111111112", "4111--1111 1111-1111",
        ]
        let refused = [
            "", "   ", "4111x1111111111111", "41111111111", "41111111111111111111", "4111.1111.1111.1111",
            "٤١١١١١١١١١١١١١١١",
        ]
        try await withServer { server in
            for pan in accepted {
                #expect(Self.matches(pan, pattern), "the pattern refuses \(pan.count) characters")
                let reply = try await server.post(
                    "/v1/tokens", json: ["pan": pan, "exp_month": 12, "exp_year": 2031])
                #expect(
                    !["invalid_pan", "invalid_pan_length"].contains(reply.errorCode ?? ""),
                    "the service refuses what the pattern takes: \(reply)")
            }
            for pan in refused {
                #expect(!Self.matches(pan, pattern), "the pattern takes \(pan.count) characters the service refuses")
                let reply = try await server.post(
                    "/v1/tokens", json: ["pan": pan, "exp_month": 12, "exp_year": 2031])
                #expect(["invalid_pan", "invalid_pan_length"].contains(reply.errorCode ?? ""), "\(reply)")
            }
        }
    }

    @Test("Finding 20: null for an optional field is 400 invalid_field (in a batch, for that card alone)")
    func finding20NullRefused() async throws {
        try await withServer { server in
            for field in ["cvv", "format", "dedupe"] {
                var card = TestCard.visa.json()
                card[field] = NSNull()
                let reply = try await server.post("/v1/tokens", json: card)
                #expect(reply.status == .badRequest, "\(field): \(reply)")
                #expect(reply.errorCode == "invalid_field", "\(field): \(reply)")
                #expect(reply.errorMessage?.hasPrefix(field) == true, "\(field): \(reply)")

                let batch = try await server.post("/v1/tokens/batch", json: ["cards": [card, TestCard.visa2.json()]])
                #expect(batch.status == .ok, "\(batch)")
                let text = batch.text
                #expect(text.contains("\"code\":\"invalid_field\""), "\(field): \(text)")
                #expect(text.contains("\"token\":\"tok_"), "the other card is tokenized: \(text)")
            }
            // Left out, the same fields are fine.
            #expect(try await server.post("/v1/tokens", json: TestCard.visa.json()).status.code < 300)
        }
        try await withDetokenizeServer { server in
            let token = try await server.tokenize([.visa]).first ?? ""
            let reply = try await server.detokenize(json: [
                "tokens": [token], "purpose": "settlement", "reference": "ref-1", "reveal": NSNull(),
            ])
            #expect(reply.status == .badRequest, "\(reply)")
            #expect(reply.errorCode == "invalid_field", "\(reply)")
        }
    }
}
