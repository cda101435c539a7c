public import CardTokens
public import Foundation
import VaultCrypto

/// A card opened for the detokenize API. Its `panDigits` point into a scratch buffer that is
/// wiped as soon as the closure that received the card returns: copy nothing out of it but what
/// the response needs.
public struct RevealedCard {
    public let token: Token
    /// The PAN's ASCII digits, in a scratch buffer that is wiped when the closure returns.
    public let panDigits: UnsafeBufferPointer<UInt8>
    public let expMonth: Int
    public let expYear: Int
    /// For a card this vault issued, when the caller asked for it: its CVV's ASCII digits, derived
    /// at this moment (docs/CRYPTO.md §21) in a buffer wiped when the closure returns.
    public internal(set) var cvvDigits: UnsafeBufferPointer<UInt8>?

    /// The card in the first `count` bytes of an opened card envelope's plaintext (docs/CRYPTO.md §7).
    /// - Throws: ``VaultError`` `record_corrupt` if it is not laid out as a card record.
    init(token: Token, cardPlaintext plaintext: UnsafeRawBufferPointer, count: Int) throws {
        guard let pan = RecordEnvelope.panRange(inCardPlaintext: plaintext, count: count) else {
            throw VaultError(.recordCorrupt, "record of token \(token) has a malformed plaintext")
        }
        self.token = token
        panDigits = UnsafeBufferPointer(rebasing: plaintext.bindMemory(to: UInt8.self)[pan])
        expMonth = Int(plaintext[pan.upperBound])
        expYear = Int(plaintext[pan.upperBound + 1]) << 8 | Int(plaintext[pan.upperBound + 2])
    }
}

extension TokenVault {
    /// Opens the records of `tokens` and hands them to `body`; `nil` for a token that does not
    /// exist in `tenant` (never issued, deleted, or another tenant's). The plaintext lives in one scratch buffer that is wiped
    /// before this returns.
    ///
    /// `beforeReveal` runs after the lookup and before anything is decrypted, with the tokens
    /// that exist and those of them this vault issued: the caller writes its audit record there.
    /// If it throws, nothing is opened (audit before reveal, fail closed).
    ///
    /// With `derivingCVVs`, each card this vault issued comes with its CVV, derived under the
    /// card-verification key it was issued under (the cardholder's reveal); a card tokenized
    /// from outside has none (its CVV is never kept past authorization).
    ///
    /// This is the vault's only way to plaintext, and it is behind the `Detokenization` SPI:
    /// only the Detokenization target (which audits before it reveals) imports it, and a test
    /// checks that. `TokenVault` itself never returns a PAN.
    @_spi(Detokenization)
    public func withRevealedCards(
        _ tokens: [Token], tenant: String, derivingCVVs: Bool = false,
        beforeReveal: (_ found: Set<Token>, _ issued: Set<Token>) async throws -> Void,
        _ body: (_ index: Int, _ card: RevealedCard?) throws -> Void
    ) async throws {
        let found = try await store.ciphertexts(of: tokens, tenant: tenant)
        try await beforeReveal(Set(found.keys), Set(found.filter { $0.value.cvkVersion != nil }.keys))
        var cardVerificationKeys = [UInt32: SecretBytes]()
        if derivingCVVs {
            for version in Set(found.values.compactMap(\.cvkVersion)) {
                cardVerificationKeys[version] = try await cardVerificationKey(version: version)
            }
        }
        let scratch = SecretBytes(
            zeroedCount: RecordEnvelope.maximumPlaintextByteCount, protection: .wipedOnRelease)
        let cvv = SecretBytes(zeroedCount: CardVerificationValue.digitCount, protection: .wipedOnRelease)
        defer {
            scratch.wipe()
            cvv.wipe()
        }
        for (index, token) in tokens.enumerated() {
            guard let record = found[token] else {
                try body(index, nil)
                continue
            }
            let count = try Self.open(
                record.ciphertext, kind: .card, token: token.rawValue, keyRing: keyRing, into: scratch)
            try scratch.withUnsafeBytes { plaintext in
                var card = try RevealedCard(token: token, cardPlaintext: plaintext, count: count)
                guard let key = record.cvkVersion.flatMap({ cardVerificationKeys[$0] }) else {
                    return try body(index, card)
                }
                try cvv.withUnsafeMutableBytes { buffer in
                    let digits = buffer.bindMemory(to: UInt8.self)
                    CardVerificationValue.derive(
                        panDigits: card.panDigits, expMonth: card.expMonth, expYear: card.expYear, key: key,
                        into: digits)
                    card.cvvDigits = UnsafeBufferPointer(digits)
                    try body(index, card)
                }
            }
            scratch.wipe()
            cvv.wipe()
        }
    }
}

extension TokenVault {
    /// Takes the CVV held for `token` (PCI DSS 3.3.1.2: used at most once, by the authorization
    /// gateway) and hands its ASCII digits to `body`; `nil` if none is held (never given, already
    /// taken, expired, or the token is deleted).
    ///
    /// The CVV row is read and deleted in one write transaction before anything is decrypted, so
    /// of two concurrent calls only one gets the CVV, and once taken it is gone from `vault.db`
    /// (`secure_delete` overwrites the row; the WAL copy goes at the next coalesced checkpoint and
    /// stops opening when its epoch key is destroyed), whatever `body` then does with it. The
    /// digits live in a scratch buffer that is wiped before this returns. Expiry is judged at `now`.
    ///
    /// Behind the `Detokenization` SPI like ``withRevealedCards(_:beforeReveal:_:)``: the caller
    /// writes its audit record before calling this.
    @_spi(Detokenization)
    public func withTakenCVV<R>(
        of token: Token, now: Date = Date(), _ body: (_ cvvDigits: UnsafeBufferPointer<UInt8>?) throws -> R
    ) async throws -> R {
        guard let record = try await store.takeCVV(of: token, now: now) else { return try body(nil) }
        // Sealed by an earlier process (before a restart) or under a destroyed epoch key: it can
        // never open again, so it is not held.
        guard let key = try Self.cvvEpochKey(of: record.ciphertext, token: token, keys: cvvKeys, now: now) else {
            return try body(nil)
        }
        let scratch = SecretBytes(
            zeroedCount: RecordEnvelope.maximumPlaintextByteCount, protection: .wipedOnRelease)
        defer { scratch.wipe() }
        let count = try record.ciphertext.withUnsafeBytes { envelope in
            try scratch.withUnsafeMutableBytes { buffer in
                try RecordEnvelope.open(envelope, kind: .cvv, token: token.rawValue, key: key, into: buffer)
            }
        }
        return try scratch.withUnsafeBytes { plaintext in
            // Layout (RecordEnvelope): 01 ‖ kind ‖ token length ‖ token ‖ CVV length ‖ CVV digits.
            let cvvStart = 3 + Int(plaintext[2]) + 1
            let cvvLength = Int(plaintext[cvvStart - 1])
            guard cvvStart + cvvLength == count else {
                throw VaultError(.recordCorrupt, "CVV record of token \(token) has a malformed plaintext")
            }
            return try body(
                UnsafeBufferPointer(rebasing: plaintext.bindMemory(to: UInt8.self)[cvvStart..<cvvStart + cvvLength]))
        }
    }
}

extension TokenVault {
    /// The in-memory key of the epoch a CVV envelope names, or `nil` if this process does not
    /// hold it.
    /// - Throws: ``VaultError`` `record_corrupt` for an envelope that is not a CVV envelope.
    static func cvvEpochKey(
        of envelope: [UInt8], token: Token, keys: CVVEpochKeys, now: Date
    ) throws -> SecretBytes? {
        let epoch: UInt64
        do {
            epoch = try envelope.withUnsafeBytes { try RecordEnvelope.cvvEpoch(of: $0) }
        } catch {
            throw VaultError(.recordCorrupt, "CVV ciphertext for token \(token) is malformed")
        }
        return keys.key(for: epoch, at: now)
    }
}
