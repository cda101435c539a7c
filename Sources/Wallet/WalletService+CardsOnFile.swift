public import CardTokens
public import Foundation
import GRDB
public import Ledger
import SQLiteSupport
import Synchronization

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
            (recorder: IdempotencyStore.Recorder<SavedCard>) in
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
                createdAt: Date(milliseconds: now.milliseconds))
            let deadToken = try await deadToken(
                of: walletID, fingerprint: metadata.fingerprint, other: metadata.token, tenant: tenant)
            return try await ledger.pool.write { db in
                // The card is saved under a token the vault has deleted: it takes the new one, or
                // it could never be charged again.
                if let deadToken {
                    try db.execute(
                        sql: """
                            UPDATE wallet_cards SET token = ?, exp_month = ?, exp_year = ?
                            WHERE wallet_id = ? AND fingerprint = ? AND token = ?
                            """,
                        arguments: [
                            card.token.rawValue, card.expMonth, card.expYear, walletID, card.fingerprint, deadToken,
                        ])
                }
                // The unique (wallet, fingerprint) pair makes the check and the insert one step.
                try db.execute(
                    sql: """
                        INSERT INTO wallet_cards (id, wallet_id, token, bin, last4, brand, exp_month, exp_year,
                            fingerprint, created_at_ms, fingerprint_scope) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT (wallet_id, fingerprint) DO NOTHING
                        """,
                    arguments: [
                        card.id, walletID, card.token.rawValue, card.bin, card.last4, card.brand.rawValue,
                        card.expMonth, card.expYear, card.fingerprint, now.milliseconds,
                        Self.fingerprintScope(metadata.fingerprintVersion ?? cards.fingerprintVersion),
                    ])
                let saved: SavedCard
                if db.changesCount == 1 {
                    saved = SavedCard(card: card, created: true)
                } else {
                    let row = try Row.fetchOne(
                        db, sql: "SELECT * FROM wallet_cards WHERE wallet_id = ? AND fingerprint = ?",
                        arguments: [walletID, card.fingerprint])
                    guard let row else { throw WalletError(.internalFailure, "a saved card vanished") }
                    saved = SavedCard(card: try Self.card(row), created: false)
                }
                try recorder.save(db, .success(saved))
                return saved
            }
        }
        return (saved.card, saved.created)
    }

    /// The token `walletID` holds the card `fingerprint` under, if it is not `other` and the
    /// vault no longer knows it.
    func deadToken(
        of walletID: String, fingerprint: String, other: Token, tenant: String
    ) async throws -> String? {
        let saved = try await ledger.pool.read { db in
            try String.fetchOne(
                db, sql: "SELECT token FROM wallet_cards WHERE wallet_id = ? AND fingerprint = ?",
                arguments: [walletID, fingerprint])
        }
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
        let stale = try await ledger.pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT wallet_cards.id, wallet_cards.token, wallets.tenant FROM wallet_cards
                    JOIN wallets ON wallets.id = wallet_cards.wallet_id WHERE wallet_cards.fingerprint_scope < ?
                    """, arguments: [current]
            ).map { (id: $0["id"] as String, token: $0["token"] as String, tenant: $0["tenant"] as String) }
        }
        for card in stale {
            let metadata = try await cards.metadata(of: Token(unchecked: card.token), tenant: card.tenant)
            let scope = metadata.map { Self.fingerprintScope($0.fingerprintVersion ?? 0) } ?? current
            try await ledger.pool.write { db in
                let update = "UPDATE OR IGNORE wallet_cards SET fingerprint = ?, fingerprint_scope = ? WHERE id = ?"
                try db.execute(sql: update, arguments: [metadata?.fingerprint ?? "gone:\(card.id)", scope, card.id])
                if db.changesCount == 0 {
                    // The wallet saved the card again meanwhile under its new fingerprint.
                    try db.execute(sql: update, arguments: ["duplicate:\(card.id)", scope, card.id])
                }
            }
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
        return try await ledger.pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM wallet_cards WHERE wallet_id = ? ORDER BY created_at_ms, id",
                arguments: [walletID]
            ).map(Self.card)
        }
    }

    func card(_ cardID: String, in walletID: String) async throws -> CardOnFile {
        let card = try await ledger.pool.read { db in
            try Row.fetchOne(
                db, sql: "SELECT * FROM wallet_cards WHERE id = ? AND wallet_id = ?", arguments: [cardID, walletID]
            ).map(Self.card)
        }
        guard let card else { throw WalletError(.cardNotFound, "the wallet has no card with this card_id") }
        return card
    }

    static func card(_ row: Row) throws -> CardOnFile {
        CardOnFile(
            id: row["id"], walletID: row["wallet_id"], token: Token(unchecked: row["token"]), bin: row["bin"],
            last4: row["last4"], brand: CardBrand(rawValue: row["brand"]) ?? .unknown, expMonth: row["exp_month"],
            expYear: row["exp_year"], fingerprint: row["fingerprint"],
            createdAt: Date(milliseconds: row["created_at_ms"]))
    }
}
