import CDETestSupport
import CardTokens
import Foundation
import GRDB
import Testing
import VaultCrypto
import VaultTestSupport

@testable import CardIssuing
@testable import TokenVault

/// The API key cards are issued for in these suites, in a tenant of its own.
let issuingPrincipal = Principal.apiKey("issuer0000000001", tenant: "acme")

extension FreshVault {
    /// An issuer on this vault; `digits` shrinks the number space for the collision tests.
    func issuer(
        bin: String = VaultCardIssuer.defaultBIN, length: Int = VaultCardIssuer.defaultPANLength,
        digits: @escaping CardNumberGenerator.DigitSource = CardNumberGenerator.secureDigit,
        maximumAttempts: Int = VaultCardIssuer.defaultMaximumAttempts,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) throws -> VaultCardIssuer {
        VaultCardIssuer(
            tokens: vault.tokens, numbers: try CardNumberGenerator(bin: bin, length: length, randomDigit: digits),
            maximumAttempts: maximumAttempts, logger: logger, clock: clock)
    }
}

extension Vault {
    /// The PAN sealed in `token`'s record, opened with the vault's internal `open`: the test's
    /// own view of what was issued (no public API returns it).
    func pan(of token: Token) async throws -> String {
        let card = try #require(try await store.card(token, now: Date()), "no record for the token")
        let scratch = SecretBytes(zeroedCount: RecordEnvelope.maximumPlaintextByteCount)
        defer { scratch.wipe() }
        let count = try TokenVault.open(
            card.ciphertext, kind: .card, token: token.rawValue, keyRing: keyRing, into: scratch)
        return try scratch.withUnsafeBytes { plaintext in
            String(
                decoding: try RevealedCard(token: token, cardPlaintext: plaintext, count: count).panDigits,
                as: UTF8.self)
        }
    }

    /// One integer from `vault.db`.
    func integer(_ sql: String, _ arguments: StatementArguments = []) async throws -> Int64? {
        try await database.pool.read { db in try Int64.fetchOne(db, sql: sql, arguments: arguments) }
    }
}

extension VaultCardIssuer {
    /// The CVV of `token` as a string (tests only: production code keeps it in wiped memory).
    func cvv(of token: Token, tenant: String = issuingPrincipal.tenant) async throws -> String {
        try await withCVV(of: token, tenant: tenant) { String(decoding: $0, as: UTF8.self) }
    }
}
