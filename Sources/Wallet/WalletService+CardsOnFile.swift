public import CardTokens
import Foundation
import Ledger

// Cards on file: tokens saved to a wallet, recognised by their caller fingerprint.
extension WalletService {
    // MARK: Cards on file

    /// Saves a tokenized card to a wallet. The same card (same fingerprint) saved again returns
    /// the existing entry with `created == false`; if the vault has deleted the entry's token,
    /// the entry takes the new token and expiry.
    /// - Throws: `wallet_not_found`, `token_not_found` (unknown or deleted token), `card_expired`.
    public func addCard(
        walletID: String, token: Token, idempotency key: IdempotencyKey, tenant: String = Principal.defaultTenant
    ) async throws
        -> (card: CardOnFile, created: Bool)
    {
        let request = Self.describe("add_card", walletID, token.rawValue)
        let now = clock()
        let saved = try await idempotency.run(key, request: request, now: now) {
            (recorder: IdempotencyRules.Recorder<SavedCard>) -> SavedCard in
            _ = try await walletCurrency(walletID, tenant: tenant)
            // A token of another tenant is not found: a key can only save its own tenant's cards.
            guard let metadata = try await cards.metadata(of: token, tenant: tenant) else {
                throw WalletError(.tokenNotFound, "the vault holds no card for this token")
            }
            guard !Self.isExpired(month: metadata.expMonth, year: metadata.expYear, now: now) else {
                throw WalletError(.cardExpired, "the card has expired")
            }
            let card = CardOnFile(
                id: RandomID.make("card", now: now), walletID: walletID, token: metadata.token, bin: metadata.bin,
                last4: metadata.last4, brand: metadata.brand, expMonth: metadata.expMonth,
                expYear: metadata.expYear, fingerprint: metadata.fingerprint,
                createdAt: now)
            let deadToken = try await deadToken(
                of: walletID, fingerprint: metadata.fingerprint, other: metadata.token, tenant: tenant)
            // A card saved under a token the vault has deleted takes the new one, or it could never
            // be charged again.
            let saved = try await store.saveCard(
                card, fingerprintScope: Self.fingerprintScope(metadata.fingerprintVersion ?? cards.fingerprintVersion),
                replacingToken: deadToken,
                recording: { card, created in [try recorder.write(.success(SavedCard(card: card, created: created)))] })
            return SavedCard(card: saved.card, created: saved.created)
        }
        return (saved.card, saved.created)
    }

    /// The token `walletID` holds the card `fingerprint` under, if it is not `other` and the
    /// vault no longer knows it.
    func deadToken(
        of walletID: String, fingerprint: String, other: Token, tenant: String
    ) async throws -> String? {
        let saved = try await store.savedToken(of: walletID, fingerprint: fingerprint)
        guard let saved, saved != other.rawValue else { return nil }
        return try await cards.metadata(of: Token(unchecked: saved), tenant: tenant) == nil ? saved : nil
    }

    /// `wallet_cards.fingerprint_scope` of a fingerprint made under the vault's root-key version
    /// `version`: 0 marks the unscoped fingerprints of before docs/CRYPTO.md §8.1, and scope
    /// `v + 1` a caller fingerprint derived under root version `v` (§13.9).
    static func fingerprintScope(_ version: UInt32) -> Int64 { Int64(version) + 1 }

    /// Replaces the fingerprints of cards saved before fingerprints were scoped to the wallet
    /// side (docs/CRYPTO.md §8.1), or saved under an older root-key version than the vault's
    /// newest (§13.9), with the ones the vault now gives, so that the same card saved again is
    /// still recognised. A card the vault has not re-fingerprinted yet (`vault keys rewrap` not
    /// finished) keeps its older scope and is read again next time. A card whose token the vault
    /// no longer holds gets a value that matches nothing. Idempotent; `vault serve` runs it at
    /// start, before it serves.
    /// - Returns: how many cards were read again.
    @discardableResult
    public func rescopeCardFingerprints() async throws -> Int {
        let current = Self.fingerprintScope(cards.fingerprintVersion)
        let stale = try await store.cards(fingerprintScopeBelow: current)
        for card in stale {
            let metadata = try await cards.metadata(of: card.token, tenant: card.tenant)
            let scope = metadata.map { Self.fingerprintScope($0.fingerprintVersion ?? 0) } ?? current
            try await store.setFingerprint(of: card.id, to: metadata?.fingerprint, scope: scope)
        }
        return stale.count
    }

    struct SavedCard: Codable, Sendable {
        var card: CardOnFile
        var created: Bool
    }

    /// The cards saved to a wallet, oldest first.
    /// - Throws: `wallet_not_found`.
    public func cards(of walletID: String, tenant: String = Principal.defaultTenant) async throws -> [CardOnFile] {
        _ = try await walletCurrency(walletID, tenant: tenant)
        return try await store.cards(of: walletID)
    }
}
