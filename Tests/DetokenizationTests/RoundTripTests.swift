import Audit
import CDETestSupport
import CardTokens
import Detokenization
import Foundation
import Testing
import TokenVault
import VaultTestSupport

/// Whatever goes in through tokenize comes back out through detokenize, in order, and a masked
/// reveal shows BIN and last four only.
@Suite("Detokenize round trip")
struct RoundTripTests {
    @Test("~300 generated PANs of 12 to 19 digits, opaque and numeric, come back exactly and in order")
    func property() async throws {
        try await withHarness { harness in
            var generator = SeededGenerator()
            let seed = generator.seed
            var cards = [(card: TestCard, format: TokenFormat)]()
            for index in 0..<296 {
                let length = 12 + index % 8
                cards.append(
                    (PANGenerator.card(length: length, using: &generator), index % 3 == 0 ? .numeric : .opaque))
            }
            cards += TestCard.published.map { ($0, .opaque) }
            cards.shuffle(using: &generator)
            let tokens = try await harness.tokenize(cards)
            #expect(Set(tokens).count == cards.count, "seed \(seed)")
            let credential = try await harness.credential()

            // Batches of uneven sizes, each in a shuffled order.
            var order = Array(cards.indices)
            order.shuffle(using: &generator)
            let batchSizes = [1, 7, 64, 150, 97]
            var start = 0
            var round = 0
            while start < order.count {
                let size = min(batchSizes[round % batchSizes.count], order.count - start)
                round += 1
                let batch = Array(order[start..<start + size])
                start += size

                let revealed = try await harness.detokenize(batch.map { tokens[$0] }, reveal: .pan, as: credential)
                try #require(revealed.count == batch.count, "seed \(seed)")
                for (result, index) in zip(revealed, batch) {
                    let card = cards[index].card
                    #expect(result.token == tokens[index], "seed \(seed)")
                    #expect(result.pan == card.pan, "seed \(seed): \(card)")
                    #expect(result.maskedPan == nil)
                    #expect(
                        result.expiry?.month == card.expMonth && result.expiry?.year == card.expYear, "seed \(seed)")
                }

                let masked = try await harness.detokenize(batch.map { tokens[$0] }, reveal: .masked, as: credential)
                try #require(masked.count == batch.count, "seed \(seed)")
                for (result, index) in zip(masked, batch) {
                    let card = cards[index].card
                    #expect(result.token == tokens[index], "seed \(seed)")
                    #expect(result.pan == nil)
                    let shown = try #require(result.maskedPan, "seed \(seed)")
                    #expect(shown == card.masked, "seed \(seed): \(card)")
                    // Never more than BIN and last four digits, whatever the length.
                    #expect(shown.count == card.pan.count)
                    #expect(
                        shown.filter(\.isWholeNumber).count == (card.pan.count >= 15 ? 10 : 4), "seed \(seed)")
                    #expect(shown.dropFirst(6).dropLast(4).allSatisfy { $0 == "*" }, "seed \(seed)")
                    #expect(result.expiry?.month == card.expMonth && result.expiry?.year == card.expYear)
                }
            }
        }
    }

    @Test("A full batch of 1,000 tokens, with repeats, comes back in order")
    func fullBatch() async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize(TestCard.published)
            let credential = try await harness.credential()
            let request = (0..<Detokenizer.maximumTokens).map { tokens[($0 * 7) % tokens.count] }
            let results = try await harness.detokenize(request, as: credential)
            #expect(results.count == Detokenizer.maximumTokens)
            for (index, result) in results.enumerated() {
                #expect(result.token == request[index])
                #expect(result.pan == TestCard.published[(index * 7) % tokens.count].pan)
            }
        }
    }

    @Test("The success record lists every well-formed token, with purpose, reference, actor and origin")
    func successRecord() async throws {
        try await withHarness { harness in
            let tokens = try await harness.tokenize([.visa, .amex])
            let credential = try await harness.credential()
            let request = [tokens[1], "not a token", unknownToken, tokens[0]]
            let (results, records) = try await harness.newAuditRecords {
                try await harness.detokenize(
                    request, reveal: .masked, purpose: "cardholder_reveal", reference: "ticket:42/a-b.c",
                    as: credential)
            }
            #expect(results.map(\.token) == [tokens[1], nil, unknownToken, tokens[0]])
            #expect(results.map(\.errorCode) == [nil, "invalid_token", "token_not_found", nil])
            try #require(records.count == 1, "\(records)")
            let event = records[0].event
            #expect(event.type == Detokenizer.eventType)
            #expect(event.outcome == .success)
            #expect(event.actor == credential.id)
            #expect(event.origin == Harness.origin)
            #expect(event.objects == [tokens[1], unknownToken, tokens[0]])
            #expect(event.purpose == "cardholder_reveal")
            #expect(event.reference == "ticket:42/a-b.c")
            #expect(event.detail?.contains("reveal=masked") == true)
        }
    }

    @Test("Tokens detokenize under every non-retired key version: before and after rotate, rewrap and retire")
    func keyLifecycle() async throws {
        try await withHarness { harness in
            let credential = try await harness.credential()
            let first = try await harness.vault.keys.status().activeVersion
            let old = try await harness.tokenize([.visa, .amex])
            let oldNumeric = try await harness.tokenize([.mastercard], format: .numeric)

            let second = try await harness.vault.keys.rotate()
            #expect(second != first)
            let new = try await harness.tokenize([.discover, .visa2])
            let all = old + oldNumeric + new
            let cards: [TestCard] = [.visa, .amex, .mastercard, .discover, .visa2]

            func expectAllReveal(_ stage: String) async throws {
                let results = try await harness.detokenize(all, as: credential)
                #expect(results.map(\.pan) == cards.map(\.pan), "\(stage)")
                let masked = try await harness.detokenize(all, reveal: .masked, as: credential)
                #expect(masked.map(\.maskedPan) == cards.map(\.masked), "\(stage)")
            }
            func versions() async throws -> [UInt32] {
                let found = try await harness.vault.store.ciphertexts(
                    of: all.map(Token.init(unchecked:)), tenant: "default")
                return all.map { found[Token(unchecked: $0)]!.keyVersion }
            }

            // Two versions in use at once.
            #expect(try await versions() == [first, first, first, second, second])
            try await expectAllReveal("after rotate")

            let rewrapped = try await harness.vault.keys.rewrap(batchSize: 2)
            #expect(rewrapped == 3)
            #expect(try await versions() == Array(repeating: second, count: 5))
            try await expectAllReveal("after rewrap")

            try await harness.vault.keys.retire(version: first)
            let states = try await harness.vault.keys.status().versions
            #expect(states.first { $0.version == first }?.state == .retired)
            try await expectAllReveal("after retire")

            // And once more: rotate without rewrap, so the latest cards are under a third key.
            let third = try await harness.vault.keys.rotate()
            let newest = try await harness.tokenize([.visa])
            let results = try await harness.detokenize(all + newest, as: credential)
            #expect(results.map(\.pan) == (cards + [.visa]).map(\.pan))
            #expect(third != second)
        }
    }

    @Test("The audit chain verifies after reveals and refusals")
    func chainVerifies() async throws {
        try await withHarness { harness in
            let credential = try await harness.credential()
            let tokens = try await harness.tokenize(TestCard.published)
            for reveal in RevealLevel.allCases {
                _ = try await harness.detokenize(tokens, reveal: reveal, as: credential)
            }
            _ = await refusal { try await harness.detokenize(tokens, purpose: "chargeback", as: credential) }
            let verification = try await harness.vault.audit.verify()
            #expect(verification.ok, "\(verification)")
        }
    }
}
