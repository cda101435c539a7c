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

/// A ciphertext is bound to its row (token) and its kind; any change makes it fail to open.
@Suite("Record integrity")
struct IntegrityTests {
    @Test func ciphertextCopiedOntoAnotherRowFails() async throws {
        try await withVault { vault, _ in
            let victim = try await tokenize(.visa, in: vault.tokens).metadata.token
            let source = try await tokenize(.mastercard, in: vault.tokens).metadata.token
            try await vault.tokens.verifyRecord(victim)
            try DB.execute(
                vault, "UPDATE cards SET ciphertext = (SELECT ciphertext FROM cards WHERE token = ?) WHERE token = ?",
                [source.rawValue, victim.rawValue])
            let error = await #expect(throws: VaultError.self) { try await vault.tokens.verifyRecord(victim) }
            #expect(error?.code == .recordCorrupt)
            #expect(error.map { !String(describing: $0).contains(TestCard.mastercard.pan) } ?? true)
            // The source row is untouched and still fine.
            try await vault.tokens.verifyRecord(source)
        }
    }

    @Test func numericCiphertextCopiedOntoTheSameLengthTokenFails() async throws {
        try await withVault { vault, _ in
            let first = try await tokenize(.visa, in: vault.tokens, format: .numeric).metadata.token
            let second = try await tokenize(.visa, in: vault.tokens, format: .numeric).metadata.token
            try DB.execute(
                vault, "UPDATE cards SET ciphertext = (SELECT ciphertext FROM cards WHERE token = ?) WHERE token = ?",
                [second.rawValue, first.rawValue])
            let error = await #expect(throws: VaultError.self) { try await vault.tokens.verifyRecord(first) }
            #expect(error?.code == .recordCorrupt)
        }
    }

    /// Every byte of the envelope is covered: the format byte, the key version, nonce, MAC and body.
    @Test func flippedByteFails() async throws {
        try await withVault { vault, _ in
            let token = try await tokenize(.amex, in: vault.tokens).metadata.token
            let original = try #require(try DB.ciphertext(vault, table: "cards", token: token.rawValue))
            for index in original.indices {
                var tampered = original
                tampered[index] ^= 0x01
                try DB.setCiphertext(vault, table: "cards", token: token.rawValue, tampered)
                let error = await #expect(throws: VaultError.self, "byte \(index)") {
                    try await vault.tokens.verifyRecord(token)
                }
                // A flipped version byte names a key the ring does not have.
                let expected: VaultError.Code = (1...4).contains(index) ? .unknownKeyVersion : .recordCorrupt
                #expect(error?.code == expected, "byte \(index)")
            }
            try DB.setCiphertext(vault, table: "cards", token: token.rawValue, Array(original.prefix(20)))
            let truncated = await #expect(throws: VaultError.self) { try await vault.tokens.verifyRecord(token) }
            #expect(truncated?.code == .recordCorrupt)
            try DB.setCiphertext(vault, table: "cards", token: token.rawValue, original)
            try await vault.tokens.verifyRecord(token)
        }
    }

    @Test func cvvCiphertextInTheCardsTableFails() async throws {
        try await withVault { vault, _ in
            var card = TestCard.discover
            card.cvv = "321"
            let token = try await tokenize(card, in: vault.tokens).metadata.token
            try DB.execute(
                vault, "UPDATE cards SET ciphertext = (SELECT ciphertext FROM cvvs WHERE token = ?) WHERE token = ?",
                [token.rawValue, token.rawValue])
            let error = await #expect(throws: VaultError.self) { try await vault.tokens.verifyRecord(token) }
            #expect(error?.code == .recordCorrupt)

            // And the other way round: a card record does not open as a CVV.
            let cardCiphertext = try #require(try DB.ciphertext(vault, table: "cvvs", token: token.rawValue))
            #expect(throws: VaultError.self) {
                _ = try Records.open(cardCiphertext, kind: .card, token: token.rawValue, keyRing: vault.keyRing)
            }
        }
    }

    @Test func unknownTokenIsNotFound() async throws {
        try await withVault { vault, _ in
            let error = await #expect(throws: VaultError.self) {
                try await vault.tokens.verifyRecord(Token(unchecked: "tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
            }
            #expect(error?.code == .tokenNotFound)
        }
    }
}
