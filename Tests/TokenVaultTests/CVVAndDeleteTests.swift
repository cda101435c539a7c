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

@Suite("CVV and delete")
struct CVVAndDeleteTests {
    @Test func cvvExpiresAndIsPurged() async throws {
        try await withVault(cvvTimeToLive: 1) { vault, _ in
            #expect(vault.tokens.cvvTimeToLive == 1)
            let clock = ManualClock()
            let tokens = TokenVault(
                store: vault.store, keyRing: vault.keyRing, cvvTimeToLive: 1, logger: TestLog.quiet(),
                clock: clock.function)
            var card = TestCard.visa
            card.cvv = "123"
            let held = try await tokenize(card, in: tokens)
            let expiry = try #require(held.metadata.cvvExpiresAt)
            #expect(abs(expiry.timeIntervalSince(clock.now) - 1) < 0.002)
            #expect(held.metadata.cvvHeld(at: clock.now))
            let without = try await tokenize(.mastercard, in: tokens)
            #expect(without.metadata.cvvExpiresAt == nil)

            let read = try await tokens.metadata(of: held.metadata.token)
            #expect(read.cvvHeld(at: clock.now))
            #expect(try await tokens.purgeExpiredCVVs() == 0)

            clock.advance(by: 0.5)
            #expect(try await tokens.purgeExpiredCVVs() == 0)
            #expect(try await tokens.metadata(of: held.metadata.token).cvvExpiresAt != nil)

            clock.advance(by: 0.6)
            // Past its time the CVV is no longer shown as held, even before the purge runs.
            #expect(try await tokens.metadata(of: held.metadata.token).cvvExpiresAt == nil)
            #expect(try await tokens.purgeExpiredCVVs() == 1)
            #expect(try DB.count(vault, "SELECT count(*) FROM cvvs") == 0)
            let after = try await tokens.metadata(of: held.metadata.token)
            #expect(after.cvvExpiresAt == nil && !after.cvvHeld(at: clock.now))
            #expect(try await tokens.purgeExpiredCVVs() == 0)
            // The card itself stays.
            try await tokens.verifyRecord(held.metadata.token)
        }
    }

    @Test func cvvTimeToLiveOfTheVault() async throws {
        try await withVault(cvvTimeToLive: 1) { vault, _ in
            var card = TestCard.amex
            card.cvv = "1234"
            let result = try await tokenize(card, in: vault.tokens)
            let expiry = try #require(result.metadata.cvvExpiresAt)
            #expect(abs(expiry.timeIntervalSince(result.metadata.createdAt) - 1) < 0.01)
        }
    }

    @Test func deleteRemovesTheRecordAndTheCVV() async throws {
        try await withVault { vault, _ in
            var card = TestCard.visa
            card.cvv = "999"
            let token = try await tokenize(card, in: vault.tokens).metadata.token
            let keep = try await tokenize(.visa2, in: vault.tokens).metadata.token
            #expect(try DB.count(vault, "SELECT count(*) FROM cvvs WHERE token = ?", [token.rawValue]) == 1)

            try await vault.tokens.delete(token)
            let missing = await #expect(throws: VaultError.self) { _ = try await vault.tokens.metadata(of: token) }
            #expect(missing?.code == .tokenNotFound)
            let unverifiable = await #expect(throws: VaultError.self) { try await vault.tokens.verifyRecord(token) }
            #expect(unverifiable?.code == .tokenNotFound)
            #expect(try DB.count(vault, "SELECT count(*) FROM cards WHERE token = ?", [token.rawValue]) == 0)
            #expect(try DB.count(vault, "SELECT count(*) FROM cvvs WHERE token = ?", [token.rawValue]) == 0)
            #expect(try DB.count(vault, "SELECT count(*) FROM deleted_tokens WHERE token = ?", [token.rawValue]) == 1)

            let again = await #expect(throws: VaultError.self) { try await vault.tokens.delete(token) }
            #expect(again?.code == .tokenNotFound)
            let unknown = await #expect(throws: VaultError.self) {
                try await vault.tokens.delete(Token(unchecked: "tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
            }
            #expect(unknown?.code == .tokenNotFound)
            try await vault.tokens.verifyRecord(keep)
            #expect(try DB.count(vault, "SELECT count(*) FROM deleted_tokens") == 1)
        }
    }

    /// A deleted numeric token is never handed out again, even in a space of 90 tokens.
    @Test func deletedNumericTokenIsNeverReissued() async throws {
        try await withVault { vault, _ in
            let card = TestCard(pan: "411111111117", brand: .visa)
            let deleted = try await tokenize(card, in: vault.tokens, format: .numeric).metadata.token
            try await vault.tokens.delete(deleted)
            let results = try await vault.tokens.tokenize(
                batch: (0..<100).map { _ in try card.request(format: .numeric) })
            let issued = results.compactMap { try? $0.get().metadata.token }
            #expect(!issued.contains(deleted))
            #expect(Set(issued).count == issued.count)
            #expect(issued.count <= 89)
        }
    }
}
