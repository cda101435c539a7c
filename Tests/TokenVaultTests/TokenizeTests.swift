import Audit
import CardTokens
import Foundation
import GRDB
import InMemoryLogging
import Logging
import SQLiteSupport
import Synchronization
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

@Suite("Tokenize", .timeLimit(.minutes(10)))
struct TokenizeTests {
    /// Property: for generated PANs of every length, with and without CVV, in both formats, the
    /// stored ciphertext opens to exactly the PAN, the expiry and the token, and the metadata is right.
    @Test func roundTripOfGeneratedCards() async throws {
        var generator = SeededGenerator()
        let seed = generator.seed
        try await withVault { vault, _ in
            var cases = [(card: TestCard, format: TokenFormat)]()
            for index in 0..<200 {
                let length = CardInput.panLengths.lowerBound + index % CardInput.panLengths.count
                let card = PANGenerator.card(length: length, withCVV: index % 3 != 0, using: &generator)
                cases.append((card, index % 2 == 0 ? .opaque : .numeric))
            }
            // Concurrent callers exercise the group commit as well as the per-item path.
            let results = try await withThrowingTaskGroup(of: (Int, TokenizeResult).self) { group in
                for (index, item) in cases.enumerated() {
                    let request = try item.card.request(format: item.format)
                    group.addTask { (index, try await vault.tokens.tokenize(request)) }
                }
                var results = [Int: TokenizeResult]()
                for try await (index, result) in group { results[index] = result }
                return results
            }
            for (index, item) in cases.enumerated() {
                let card = item.card
                let context = Comment(rawValue: "seed \(seed), case \(index): \(card.testDescription)")
                let result = try #require(results[index], context)
                let metadata = result.metadata
                #expect(result.created, context)
                #expect(metadata.format == item.format, context)
                #expect(Token.format(of: metadata.token.rawValue) == item.format, context)
                #expect(metadata.bin == card.bin, context)
                #expect(metadata.last4 == card.last4, context)
                #expect(metadata.brand == card.brand, context)
                #expect(metadata.expMonth == card.expMonth && metadata.expYear == card.expYear, context)
                #expect(metadata.fingerprint.count == 32, context)
                #expect(metadata.fingerprint.allSatisfy { $0.isHexDigit && !$0.isUppercase }, context)
                #expect((metadata.cvvExpiresAt != nil) == (card.cvv != nil), context)

                let token = metadata.token.rawValue
                let stored = try #require(try await vault.store.card(metadata.token, now: Date()), context)
                #expect(stored.keyVersion == 1, context)
                #expect(Records.headerVersion(stored.ciphertext) == 1, context)
                #expect(stored.metadata.bin == card.bin && stored.metadata.last4 == card.last4, context)
                // The stored fingerprint is the internal one; callers see one derived from it.
                #expect(stored.metadata.fingerprint.isEmpty, context)
                #expect(stored.fingerprint.count == 16, context)
                #expect(Hex.encode(stored.fingerprint) != metadata.fingerprint, context)
                let record = try Records.open(stored.ciphertext, kind: .card, token: token, keyRing: vault.keyRing)
                #expect(
                    record
                        == OpenedRecord(
                            kind: RecordEnvelope.Kind.card.rawValue, token: token, data: card.pan,
                            expMonth: card.expMonth, expYear: card.expYear),
                    context)

                let cvvCiphertext = try DB.ciphertext(vault, table: "cvvs", token: token)
                if let cvv = card.cvv {
                    let sealed = try #require(cvvCiphertext, context)
                    let opened = try Records.openCVV(sealed, token: token, tokens: vault.tokens)
                    #expect(opened == OpenedRecord(kind: 0x43, token: token, data: cvv), context)
                } else {
                    #expect(cvvCiphertext == nil, context)
                }
                try await vault.tokens.verifyRecord(metadata.token)
            }
        }
    }

    @Test(arguments: [TestCard.visa, .visa2, .mastercard, .amex, .discover])
    func publishedTestCards(card: TestCard) async throws {
        try await withVault { vault, _ in
            let result = try await tokenize(card, in: vault.tokens)
            #expect(result.metadata.brand == card.brand)
            #expect(result.metadata.bin == card.bin && result.metadata.last4 == card.last4)
            let read = try await vault.tokens.metadata(of: result.metadata.token)
            #expect(read.token == result.metadata.token)
            #expect(read.bin == card.bin && read.last4 == card.last4 && read.brand == card.brand)
            #expect(read.expMonth == card.expMonth && read.expYear == card.expYear)
            #expect(read.fingerprint == result.metadata.fingerprint)
            #expect(abs(read.createdAt.timeIntervalSince(result.metadata.createdAt)) < 0.002)
            #expect(read.cvvExpiresAt == nil && !read.cvvHeld())
        }
    }

    @Test("Finding 17: the largest card plaintext (opaque token, 19-digit PAN) is 60 bytes, as CRYPTO.md §7 says")
    func largestPlaintextFits() async throws {
        try await withVault { vault, _ in
            let card = TestCard(pan: "4111111111111111110", brand: .visa)
            let result = try await tokenize(card, in: vault.tokens)
            let stored = try #require(try await vault.store.card(result.metadata.token, now: Date()))
            // Envelope: header 5 + nonce 24 + MAC 16 + plaintext.
            #expect(stored.ciphertext.count - 45 == 60)
            #expect(60 <= RecordEnvelope.maximumPlaintextByteCount)
            try await vault.tokens.verifyRecord(result.metadata.token)
        }
    }

    @Test func equalPANsHaveEqualFingerprints() async throws {
        try await withVault { vault, _ in
            let first = try await tokenize(.visa, in: vault.tokens)
            var again = TestCard.visa
            again.expMonth = 3
            let second = try await tokenize(again, in: vault.tokens, format: .numeric)
            let other = try await tokenize(.visa2, in: vault.tokens)
            #expect(first.metadata.token != second.metadata.token)
            #expect(first.metadata.fingerprint == second.metadata.fingerprint)
            #expect(first.metadata.fingerprint != other.metadata.fingerprint)
        }
    }

    @Test func opaqueTokensAreWellFormedAndUnique() async throws {
        try await withVault { vault, _ in
            let requests = try (0..<10_000).map { _ in try TestCard.visa.request() }
            let results = try await vault.tokens.tokenize(batch: requests)
            let pattern = /^tok_[A-Za-z0-9_-]{30}$/
            var tokens = Set<String>()
            for result in results {
                let token = try result.get().metadata.token.rawValue
                #expect(token.wholeMatch(of: pattern) != nil, "\(token)")
                #expect(Token.format(of: token) == .opaque)
                tokens.insert(token)
            }
            #expect(tokens.count == 10_000)
            #expect(try DB.count(vault, "SELECT count(DISTINCT token) FROM cards") == 10_000)
        }
    }

    @Test func numericTokensKeepBINAndLastFourAndFailLuhn() async throws {
        var generator = SeededGenerator()
        let seed = generator.seed
        try await withVault { vault, _ in
            var cards = [TestCard]()
            for length in CardInput.panLengths {
                for _ in 0..<60 { cards.append(PANGenerator.card(length: length, using: &generator)) }
            }
            let results = try await vault.tokens.tokenize(batch: cards.map { try $0.request(format: .numeric) })
            #expect(results.count == cards.count)
            var tokens = Set<String>()
            for (card, result) in zip(cards, results) {
                let context = Comment(rawValue: "seed \(seed): \(card.testDescription)")
                let token = try result.get().metadata.token.rawValue
                tokens.insert(token)
                #expect(token.count == card.pan.count, context)
                #expect(token.allSatisfy(\.isASCII) && token.allSatisfy(\.isNumber), context)
                #expect(token.prefix(6) == card.pan.prefix(6), context)
                #expect(token.suffix(4) == card.pan.suffix(4), context)
                #expect(!Luhn.isValid(digits: Array(token.utf8)), context)
                #expect(!TestLuhn.passes(token), context)
                #expect(token != card.pan, context)
                #expect(Token.format(of: token) == .numeric, context)
                try await vault.tokens.verifyRecord(Token(unchecked: token))
            }
            #expect(tokens.count == cards.count)
        }
    }

    /// A 12-digit PAN leaves two random digits: at most 90 Luhn-failing tokens per BIN and last
    /// four. Asking for more must end in `token_space_exhausted`, never in a loop or a duplicate.
    @Test func smallNumericTokenSpaceIsExhaustedCleanly() async throws {
        try await withVault { vault, _ in
            let card = TestCard(pan: "411111111117", brand: .visa)
            #expect(TestLuhn.passes(card.pan))
            let possible = Set(
                (0..<100).map { String(card.pan.prefix(6)) + String(format: "%02d", $0) + String(card.pan.suffix(4)) }
                    .filter { !TestLuhn.passes($0) })
            #expect(possible.count == 90)

            let batch = try await vault.tokens.tokenize(
                batch: (0..<120).map { _ in try card.request(format: .numeric) })
            var issued = [String]()
            var exhausted = 0
            for result in batch {
                switch result {
                case .success(let result): issued.append(result.metadata.token.rawValue)
                case .failure(let error):
                    #expect(VaultError.Code.tokenSpaceExhausted.matches(error), "\(error)")
                    exhausted += 1
                }
            }
            // One by one as well: each call gives up after a bounded number of attempts.
            for _ in 0..<3 {
                do {
                    issued.append(try await tokenize(card, in: vault.tokens, format: .numeric).metadata.token.rawValue)
                } catch {
                    #expect(VaultError.Code.tokenSpaceExhausted.matches(error), "\(error)")
                    exhausted += 1
                }
            }
            #expect(issued.count + exhausted == 123)
            #expect(Set(issued).count == issued.count, "a numeric token was issued twice")
            #expect(issued.count <= 90)
            #expect(exhausted >= 33)
            #expect(Set(issued).isSubset(of: possible))
            #expect(try DB.count(vault, "SELECT count(*) FROM cards") == issued.count)
        }
    }

    @Test func batchKeepsOrder() async throws {
        var generator = SeededGenerator()
        let seed = generator.seed
        try await withVault { vault, _ in
            let cards = (0..<1000).map { index in
                PANGenerator.card(withCVV: index % 2 == 0, using: &generator)
            }
            let results = try await vault.tokens.tokenize(batch: cards.map { try $0.request() })
            #expect(results.count == 1000)
            for (index, (card, result)) in zip(cards, results).enumerated() {
                let metadata = try result.get().metadata
                #expect(metadata.last4 == card.last4, "seed \(seed), item \(index)")
                #expect(metadata.bin == card.bin, "seed \(seed), item \(index)")
                #expect(metadata.expMonth == card.expMonth && metadata.expYear == card.expYear)
            }
            #expect(try DB.count(vault, "SELECT count(*) FROM cards") == 1000)
            #expect(try DB.count(vault, "SELECT count(*) FROM cvvs") == 500)
            #expect(try await vault.tokens.tokenize(batch: []).isEmpty)
        }
    }
}
