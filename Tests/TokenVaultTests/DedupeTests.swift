import Audit
import CardTokens
import Foundation
import GRDB
import InMemoryLogging
import Logging
import Synchronization
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

@Suite("Dedupe", .timeLimit(.minutes(10)))
struct DedupeTests {
    @Test func dedupeReturnsTheExistingTokenOfTheSamePANAndFormat() async throws {
        try await withVault { vault, _ in
            let first = try await tokenize(.visa, in: vault.tokens, dedupe: true)
            #expect(first.created)
            let second = try await tokenize(.visa, in: vault.tokens, dedupe: true)
            #expect(!second.created)
            #expect(second.metadata.token == first.metadata.token)
            #expect(second.metadata.fingerprint == first.metadata.fingerprint)

            // Another format is another token.
            let numeric = try await tokenize(.visa, in: vault.tokens, format: .numeric, dedupe: true)
            #expect(numeric.created)
            #expect(numeric.metadata.token != first.metadata.token)
            let numericAgain = try await tokenize(.visa, in: vault.tokens, format: .numeric, dedupe: true)
            #expect(!numericAgain.created && numericAgain.metadata.token == numeric.metadata.token)

            // Without dedupe, always a new token.
            let fresh = try await tokenize(.visa, in: vault.tokens)
            #expect(fresh.created)
            #expect(fresh.metadata.token != first.metadata.token)

            // Another PAN is another token.
            let other = try await tokenize(.visa2, in: vault.tokens, dedupe: true)
            #expect(other.created && other.metadata.token != first.metadata.token)

            // Dedupe keeps returning the first token of the PAN.
            let third = try await tokenize(.visa, in: vault.tokens, dedupe: true)
            #expect(!third.created && third.metadata.token == first.metadata.token)
            #expect(try DB.count(vault, "SELECT count(*) FROM cards") == 4)
        }
    }

    @Test func concurrentDedupeOfANewPANMakesOneToken() async throws {
        try await withVault { vault, _ in
            let results = try await withThrowingTaskGroup(of: TokenizeResult.self) { group in
                for _ in 0..<20 {
                    let request = try TestCard.mastercard.request(dedupe: true)
                    group.addTask { try await vault.tokens.tokenize(request) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.count == 20)
            #expect(Set(results.map(\.metadata.token)).count == 1)
            #expect(results.count(where: \.created) == 1)
            #expect(try DB.count(vault, "SELECT count(*) FROM cards") == 1)
        }
    }

    @Test func dedupeInOneBatchMakesOneToken() async throws {
        try await withVault { vault, _ in
            let requests = try (0..<5).map { _ in try TestCard.amex.request(dedupe: true) }
            let results = try await vault.tokens.tokenize(batch: requests).map { try $0.get() }
            #expect(Set(results.map(\.metadata.token)).count == 1)
            #expect(results.map(\.created) == [true, false, false, false, false])
        }
    }

    @Test func dedupeHitWithACVVKeepsThatCVV() async throws {
        try await withVault { vault, _ in
            let first = try await tokenize(.visa, in: vault.tokens, dedupe: true)
            #expect(first.metadata.cvvExpiresAt == nil)
            var withCVV = TestCard.visa
            withCVV.cvv = "737"
            let second = try await tokenize(withCVV, in: vault.tokens, dedupe: true)
            #expect(!second.created)
            #expect(second.metadata.token == first.metadata.token)
            let expiry = try #require(second.metadata.cvvExpiresAt)
            #expect(expiry > Date().addingTimeInterval(3000))

            let metadata = try await vault.tokens.metadata(of: first.metadata.token)
            #expect(metadata.cvvHeld())
            #expect(metadata.cvvExpiresAt != nil)
            #expect(try DB.count(vault, "SELECT count(*) FROM cards") == 1)

            let token = first.metadata.token.rawValue
            let sealed = try #require(try DB.ciphertext(vault, table: "cvvs", token: token))
            let opened = try Records.openCVV(sealed, token: token, tokens: vault.tokens)
            #expect(opened.data == "737" && opened.token == token)

            // A later CVV replaces the held one.
            withCVV.cvv = "123"
            _ = try await tokenize(withCVV, in: vault.tokens, dedupe: true)
            let resealed = try #require(try DB.ciphertext(vault, table: "cvvs", token: token))
            #expect(try Records.openCVV(resealed, token: token, tokens: vault.tokens).data == "123")
            #expect(try DB.count(vault, "SELECT count(*) FROM cvvs") == 1)
        }
    }
}
