import Audit
import CardTokens
import Foundation
import HTTPTypes
import Testing
import TokenVault
import VaultTestSupport

/// Issue 8, finding 1: the tokenize API must not be a PAN-recovery oracle. An attacker who knows
/// a card's BIN and last four tokenizes every candidate for the middle digits, with `dedupe`,
/// and looks for the candidate whose answer differs (the victim's token, an "existing" status,
/// or a fingerprint equal to one it has seen for the victim's card). Nothing may differ.
@Suite("Tokenize is no PAN-recovery oracle")
struct TokenizeOracleTests {
    /// Luhn-valid candidates `bin ‖ middle ‖ last4` of `length` digits, in order, without `excluded`.
    static func candidates(
        bin: String, last4: String, length: Int, count: Int, excluding excluded: String
    )
        -> [String]
    {
        let middleDigits = length - bin.count - last4.count
        var found = [String]()
        var middle = 0
        while found.count < count {
            let digits = String(middle)
            let pan = bin + String(repeating: "0", count: middleDigits - digits.count) + digits + last4
            if pan != excluded && TestLuhn.passes(pan) { found.append(pan) }
            middle += 1
        }
        return found
    }

    /// The victim's card tokenized (with dedupe) by the standard key and saved to a wallet; returns
    /// its token and every fingerprint of it an attacker could hold (the victim's, the wallet's).
    static func victim(
        _ card: TestCard, on server: TestServer
    ) async throws -> (token: String, fingerprints: Set<String>) {
        let tokenized = try await server.tokenized(card, dedupe: true)
        let wallet = try await server.createWallet()
        let saved = try await server.walletPost("/v1/wallets/\(wallet.id)/cards", json: ["token": tokenized.token])
        try #require(saved.status == .created, "\(saved)")
        let walletFingerprint = try saved.decode(CardReply.self).fingerprint
        return (tokenized.token, [tokenized.fingerprint, walletFingerprint])
    }

    /// Sends `candidates` as one dedupe batch under `secret` and checks that the answers depend on
    /// the position only: the first `limit` are new tokens whose token and fingerprint match
    /// nothing known of the victim's card, the rest are refused with `similar_cards_limit`.
    static func expectNothingRecovered(
        _ candidates: [String], secret: String, victimToken: String, known: Set<String>, limit: Int,
        on server: TestServer
    ) async throws {
        let cards = candidates.map { ["pan": $0, "exp_month": 12, "exp_year": 2031, "dedupe": true] as [String: Any] }
        let reply = try await server.post("/v1/tokens/batch", json: ["cards": cards], auth: .bearer(secret))
        try #require(reply.status == .ok, "\(reply)")
        let results = try reply.decode(BatchReply.self).results
        try #require(results.count == candidates.count)
        for (index, result) in results.enumerated() {
            if index < limit {
                let token = try #require(result.token, "candidate \(index): \(result)")
                #expect(token.token != victimToken, "candidate \(index) answered with the victim's token")
                #expect(!known.contains(token.fingerprint), "candidate \(index) has a fingerprint of the victim's card")
            } else {
                #expect(result.errorCode == "similar_cards_limit", "candidate \(index): \(result)")
            }
        }
        #expect(!reply.contains(victimToken))
    }

    @Test("Finding 1: one tokenize + tokens:read key enumerating a 13-digit card in one batch recovers nothing")
    func enumerationWithOneKey() async throws {
        try await withServer(wallets: WalletSetup()) { server in
            let real = TestCard(pan: "4222222222222", brand: .visa)
            let victim = try await Self.victim(real, on: server)
            let (attacker, secret) = try await server.vault.credentials.create(
                name: "attacker", scopes: [.tokenize, .tokensRead], purposes: [])
            // The attacker holds the victim's token too (say, from wallet.db) and reads its metadata.
            let read = try await server.send(.get, "/v1/tokens/\(victim.token)", auth: .bearer(secret))
            try #require(read.status == .ok)
            let known = victim.fingerprints.union([try read.decode(TokenReply.self).fingerprint])

            var candidates = Self.candidates(
                bin: real.bin, last4: real.last4, length: 13, count: 99, excluding: real.pan)
            candidates.insert(real.pan, at: Int.random(in: 0...candidates.count))
            let before = try await server.vault.audit.records(limit: 1_000_000).last?.sequence ?? 0
            try await Self.expectNothingRecovered(
                candidates, secret: secret, victimToken: victim.token, known: known,
                limit: server.vault.tokens.similarCards.limit, on: server)
            let records = try await server.vault.audit.records(after: before, limit: 1_000_000)
            // The burst is audited once, with BIN and last four, never a PAN.
            let alerts = records.filter { $0.event.type == "tokenize.similar_cards" }
            #expect(alerts.count == 1)
            #expect(alerts.first?.event.actor == attacker.id)
            #expect(alerts.first?.event.outcome == .denied)
            #expect(alerts.first?.event.detail?.contains("bin=422222 last4=2222") == true)
        }
    }

    @Test("Finding 1: two keys enumerating a 16-digit card (1,000 candidates each) recover nothing")
    func enumerationWithTwoKeys() async throws {
        try await withServer(wallets: WalletSetup()) { server in
            let real = TestCard(pan: "4111111111111111", brand: .visa)
            let victim = try await Self.victim(real, on: server)
            let first = try await server.vault.credentials.create(name: "a", scopes: [.tokenize], purposes: [])
            let second = try await server.vault.credentials.create(
                name: "b", scopes: [.tokenize, .tokensRead], purposes: [])
            let read = try await server.send(.get, "/v1/tokens/\(victim.token)", auth: .bearer(second.secret))
            var known = victim.fingerprints.union([try read.decode(TokenReply.self).fingerprint])
            let pool = Self.candidates(bin: real.bin, last4: real.last4, length: 16, count: 1998, excluding: real.pan)
            for (index, secret) in [first.secret, second.secret].enumerated() {
                var candidates = Array(pool[(index * 999)..<((index + 1) * 999)])
                // The real card first in one batch: the one position where it is admitted.
                candidates.insert(real.pan, at: index == 0 ? 0 : Int.random(in: 0...candidates.count))
                try await Self.expectNothingRecovered(
                    candidates, secret: secret, victimToken: victim.token, known: known,
                    limit: server.vault.tokens.similarCards.limit, on: server)
            }
            // What each key was told about the real card differs from what the other saw, too.
            let again = try await server.post(
                "/v1/tokens", json: real.json(dedupe: true), auth: .bearer(first.secret))
            #expect(again.status == .ok)
            let firstView = try again.decode(TokenReply.self)
            #expect(firstView.token != victim.token)
            known.insert(firstView.fingerprint)
            let secondRead = try await server.send(.get, "/v1/tokens/\(firstView.token)", auth: .bearer(second.secret))
            #expect(!victim.fingerprints.contains(try secondRead.decode(TokenReply.self).fingerprint))
        }
    }

    @Test("Finding 1: dedupe returns a token only to the key that created it")
    func dedupeIsPerCreator() async throws {
        try await withServer { server in
            let card = TestCard(pan: "5555555555554444", brand: .mastercard)
            let original = try await server.tokenized(card, dedupe: true)
            let again = try await server.tokenize(card, dedupe: true)
            #expect(again.status == .ok)
            #expect(try again.decode(TokenReply.self).token == original.token)

            let (_, other) = try await server.key(scopes: [.tokenize], name: "other")
            let fromOther = try await server.tokenize(card, dedupe: true, auth: .bearer(other))
            #expect(fromOther.status == .created)
            let otherToken = try fromOther.decode(TokenReply.self)
            #expect(otherToken.token != original.token)
            #expect(otherToken.fingerprint != original.fingerprint)
            // The other key's own dedupe finds its own token from then on.
            let otherAgain = try await server.tokenize(card, dedupe: true, auth: .bearer(other))
            #expect(otherAgain.status == .ok)
            #expect(try otherAgain.decode(TokenReply.self).token == otherToken.token)
        }
    }

    @Test("Finding 1: a fingerprint is stable for one reader and creator, and differs for another reader")
    func fingerprintsAreScopedToTheReader() async throws {
        try await withServer { server in
            let card = TestCard(pan: "4242424242424242", brand: .visa)
            let first = try await server.tokenized(card)
            let second = try await server.tokenized(card)
            #expect(first.token != second.token)
            #expect(first.fingerprint == second.fingerprint)
            let (_, reader) = try await server.key(scopes: [.tokensRead], name: "reader")
            let viaReader = try await server.send(.get, "/v1/tokens/\(first.token)", auth: .bearer(reader))
            let viaReaderSecond = try await server.send(.get, "/v1/tokens/\(second.token)", auth: .bearer(reader))
            let readerFingerprint = try viaReader.decode(TokenReply.self).fingerprint
            #expect(readerFingerprint == (try viaReaderSecond.decode(TokenReply.self).fingerprint))
            #expect(readerFingerprint != first.fingerprint)
            // Nothing shown equals the vault's internal fingerprint.
            let stored = try #require(try await server.vault.store.card(Token(unchecked: first.token), now: Date()))
            let internalHex = stored.fingerprint.map { String(format: "%02x", $0) }.joined()
            #expect(![first.fingerprint, readerFingerprint].contains(internalHex))
        }
    }

    @Test("Finding 1: tokenize is limited per key by cards, a batch counting each card")
    func tokenizeRateLimitCountsCards() async throws {
        try await withServer(tokenizeRateLimit: 0.5) { server in
            var random = SystemRandomNumberGenerator()
            let cards = (0..<1000).map { _ in
                ["pan": PANGenerator.card(using: &random).pan, "exp_month": 12, "exp_year": 2031] as [String: Any]
            }
            let first = try await server.post("/v1/tokens/batch", json: ["cards": cards])
            #expect(first.status == .ok)
            let second = try await server.tokenize(.visa)
            #expect(second.status == .tooManyRequests)
            #expect(second.errorCode == "rate_limited")
            #expect(second.headers[.retryAfter] != nil)
            // Another key has its own budget.
            let (_, other) = try await server.key(scopes: [.tokenize], name: "other")
            #expect(try await server.tokenize(.visa, auth: .bearer(other)).status == .created)
        }
    }
}
