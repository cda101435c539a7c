import CardTokens
import Foundation
import GRDB
import Ledger
import Synchronization
import Testing
import VaultTestSupport
import Wallet

@Suite("Cards on file")
struct CardOnFileTests {
    @Test("A card is saved with its metadata; the same card under another token returns the same entry")
    func addAndDeduplicate() async throws {
        try await withWallet { sandbox async throws in
            let wallet = try await sandbox.createWallet()
            let metadata = TestCards.visa(expMonth: 7, expYear: 2031)
            sandbox.cards.put(metadata)
            let (card, created) = try await sandbox.service.addCard(
                walletID: wallet.id, token: metadata.token, idempotency: sandbox.key("add-1"))
            #expect(created)
            #expect(card.id.hasPrefix("card_"))
            #expect(card.walletID == wallet.id)
            #expect(card.token == metadata.token)
            #expect(card.bin == "411111")
            #expect(card.last4 == "1111")
            #expect(card.brand == .visa)
            #expect(card.expMonth == 7)
            #expect(card.expYear == 2031)
            #expect(card.fingerprint == "fp-4111")
            #expect(card.createdAt == sandbox.clock.now)

            // The same PAN tokenized again (another token, same fingerprint), under another key.
            let again = TestCards.visa()
            sandbox.cards.put(again)
            #expect(again.token != metadata.token)
            sandbox.clock.advance(by: 5)
            let (same, createdAgain) = try await sandbox.service.addCard(
                walletID: wallet.id, token: again.token, idempotency: sandbox.key("add-2"))
            #expect(!createdAgain)
            #expect(same == card)
            #expect(try await sandbox.service.cards(of: wallet.id) == [card])
            #expect(try await sandbox.count("wallet_cards") == 1)

            // Another wallet may save the same card.
            let other = try await sandbox.createWallet("other")
            let (elsewhere, createdElsewhere) = try await sandbox.service.addCard(
                walletID: other.id, token: metadata.token, idempotency: sandbox.key("add-3"))
            #expect(createdElsewhere)
            #expect(elsewhere.id != card.id)
            #expect(elsewhere.walletID == other.id)
        }
    }

    @Test("A card saved under a token the vault has since deleted takes the new token when saved again")
    func deadTokenReplaced() async throws {
        try await withWallet { sandbox async throws in
            let wallet = try await sandbox.createWallet()
            let first = TestCards.visa(expMonth: 12, expYear: 2031)
            let card = try await sandbox.addCard(to: wallet.id, first)
            sandbox.cards.delete(first.token)
            let gone = await walletErrorCode {
                try await sandbox.service.topUp(
                    walletID: wallet.id, cardID: card.id, amount: 100, currency: "EUR", idempotency: sandbox.freshKey())
            }
            #expect(gone == .tokenNotFound)

            // The cardholder enters the same card again (reissued: same PAN, later expiry).
            let again = TestCards.visa(expMonth: 6, expYear: 2034)
            sandbox.cards.put(again)
            let (saved, created) = try await sandbox.service.addCard(
                walletID: wallet.id, token: again.token, idempotency: sandbox.freshKey())
            #expect(!created)
            #expect(saved.id == card.id)
            #expect(saved.token == again.token)
            #expect(saved.expMonth == 6 && saved.expYear == 2034)
            #expect(saved.createdAt == card.createdAt)
            #expect(try await sandbox.service.cards(of: wallet.id) == [saved])

            // And it can be charged again.
            let topUp = try await sandbox.service.topUp(
                walletID: wallet.id, cardID: card.id, amount: 100, currency: "EUR", idempotency: sandbox.freshKey())
            #expect(topUp.status == .approved)
            #expect(sandbox.authorizer.requests.last?.token == again.token)
            #expect(try await sandbox.balance(wallet.id) == 100)
        }
    }

    @Test("The same key and request replays the first response (created stays true)")
    func replay() async throws {
        try await withWallet { sandbox async throws in
            let wallet = try await sandbox.createWallet()
            let metadata = TestCards.visa()
            sandbox.cards.put(metadata)
            let key = try sandbox.key("add")
            let first = try await sandbox.service.addCard(walletID: wallet.id, token: metadata.token, idempotency: key)
            let second = try await sandbox.service.addCard(walletID: wallet.id, token: metadata.token, idempotency: key)
            #expect(first.created && second.created)
            #expect(first.card == second.card)
            // Even once the vault has deleted the token: the stored outcome wins over validation.
            sandbox.cards.delete(metadata.token)
            let third = try await sandbox.service.addCard(walletID: wallet.id, token: metadata.token, idempotency: key)
            #expect(third.card == first.card && third.created)
            // Another token under that key is reuse.
            let other = TestCards.otherVisa()
            sandbox.cards.put(other)
            let reused = await walletErrorCode {
                try await sandbox.service.addCard(walletID: wallet.id, token: other.token, idempotency: key)
            }
            #expect(reused == .idempotencyKeyReused)
            #expect(try await sandbox.count("wallet_cards") == 1)
        }
    }

    @Test("An unknown or deleted token is token_not_found and saves nothing")
    func unknownToken() async throws {
        try await withWallet { sandbox async throws in
            let wallet = try await sandbox.createWallet()
            let never = TestCards.token()
            let unknown = await walletErrorCode {
                try await sandbox.service.addCard(walletID: wallet.id, token: never, idempotency: sandbox.key("a"))
            }
            #expect(unknown == .tokenNotFound)

            let metadata = TestCards.visa()
            sandbox.cards.put(metadata)
            sandbox.cards.delete(metadata.token)
            let deleted = await walletErrorCode {
                try await sandbox.service.addCard(
                    walletID: wallet.id, token: metadata.token, idempotency: sandbox.key("b"))
            }
            #expect(deleted == .tokenNotFound)
            #expect(try await sandbox.count("wallet_cards") == 0)
            // Nothing was stored, so once the vault knows the token the same key works.
            sandbox.cards.put(metadata)
            let (_, created) = try await sandbox.service.addCard(
                walletID: wallet.id, token: metadata.token, idempotency: sandbox.key("b"))
            #expect(created)
        }
    }

    @Test("An expired card is card_expired; a card is valid through its expiry month")
    func expiry() async throws {
        try await withWallet { sandbox async throws in
            // The clock is at 2030-03-17 UTC.
            let wallet = try await sandbox.createWallet()
            for (month, year) in [(2, 2030), (12, 2029), (3, 2020)] {
                let metadata = TestCards.metadata(
                    bin: "411111", last4: "1111", brand: .visa, expMonth: month, expYear: year,
                    fingerprint: "fp-\(month)-\(year)")
                sandbox.cards.put(metadata)
                let code = await walletErrorCode {
                    try await sandbox.service.addCard(
                        walletID: wallet.id, token: metadata.token, idempotency: sandbox.freshKey())
                }
                #expect(code == .cardExpired, "\(month)/\(year)")
            }
            #expect(try await sandbox.count("wallet_cards") == 0)
            let thisMonth = TestCards.metadata(
                bin: "555555", last4: "4444", brand: .mastercard, expMonth: 3, expYear: 2030, fingerprint: "fp-now")
            sandbox.cards.put(thisMonth)
            let (card, _) = try await sandbox.service.addCard(
                walletID: wallet.id, token: thisMonth.token, idempotency: sandbox.freshKey())
            #expect(card.expMonth == 3 && card.expYear == 2030)
            #expect(card.brand == .mastercard)
        }
    }

    @Test("An unknown wallet is wallet_not_found, for saving and for listing")
    func unknownWallet() async throws {
        try await withWallet { sandbox async throws in
            let metadata = TestCards.visa()
            sandbox.cards.put(metadata)
            let add = await walletErrorCode {
                try await sandbox.service.addCard(
                    walletID: "wal_missing", token: metadata.token, idempotency: sandbox.freshKey())
            }
            #expect(add == .walletNotFound)
            #expect(await walletErrorCode { try await sandbox.service.cards(of: "wal_missing") } == .walletNotFound)
            #expect(try await sandbox.count("wallet_cards") == 0)
        }
    }

    @Test("Cards are listed oldest first, per wallet")
    func listing() async throws {
        try await withWallet { sandbox async throws in
            let wallet = try await sandbox.createWallet()
            let other = try await sandbox.createWallet("other")
            #expect(try await sandbox.service.cards(of: wallet.id).isEmpty)
            var added = [CardOnFile]()
            for index in 0..<6 {
                let metadata = TestCards.metadata(
                    bin: "411111", last4: String(format: "%04d", index), brand: .visa, fingerprint: "fp-list-\(index)")
                added.append(try await sandbox.addCard(to: wallet.id, metadata))
                sandbox.clock.advance(by: 1)
            }
            _ = try await sandbox.addCard(to: other.id, TestCards.otherVisa())
            let listed = try await sandbox.service.cards(of: wallet.id)
            #expect(listed == added)
            #expect(listed.map(\.last4) == ["0000", "0001", "0002", "0003", "0004", "0005"])
            #expect(try await sandbox.service.cards(of: other.id).map(\.last4) == ["4242"])
        }
    }
}

@Suite("Cards on file saved before fingerprints were scoped")
struct FingerprintRescopeTests {
    @Test("Issue 8, finding 1: old fingerprints are replaced by the wallet-scoped ones, once")
    func oldFingerprintsAreRescoped() async throws {
        try await withWallet { sandbox async throws in
            let wallet = try await sandbox.createWallet()
            let kept = TestCards.visa()
            let gone = TestCards.otherVisa()
            sandbox.cards.put(kept)
            sandbox.cards.put(gone)
            let first = try await sandbox.service.addCard(
                walletID: wallet.id, token: kept.token, idempotency: sandbox.key("add-1"))
            let second = try await sandbox.service.addCard(
                walletID: wallet.id, token: gone.token, idempotency: sandbox.key("add-2"))
            #expect(try await sandbox.service.rescopeCardFingerprints() == 0)
            // As a wallet.db from before would hold them: the old global fingerprint, unscoped.
            try await sandbox.ledger.pool.write { db in
                try db.execute(sql: "UPDATE wallet_cards SET fingerprint = 'old-' || id, fingerprint_scope = 0")
            }
            var rescoped = kept
            rescoped.fingerprint = "scoped-4111"
            sandbox.cards.put(rescoped)
            sandbox.cards.delete(gone.token)

            #expect(try await sandbox.service.rescopeCardFingerprints() == 2)
            let cards = try await sandbox.service.cards(of: wallet.id)
            #expect(cards.first { $0.id == first.card.id }?.fingerprint == "scoped-4111")
            #expect(cards.first { $0.id == second.card.id }?.fingerprint == "gone:\(second.card.id)")
            #expect(try await sandbox.service.rescopeCardFingerprints() == 0)
            // The card is recognised under its new fingerprint.
            let again = TestCards.visa()
            var againScoped = again
            againScoped.fingerprint = "scoped-4111"
            sandbox.cards.put(againScoped)
            let saved = try await sandbox.service.addCard(
                walletID: wallet.id, token: again.token, idempotency: sandbox.key("add-3"))
            #expect(!saved.created && saved.card.id == first.card.id)
        }
    }

    @Test("Issue 8, finding 8: after a root-key rotation, saved fingerprints are read again once re-fingerprinted")
    func fingerprintsFollowARootRotation() async throws {
        try await withWallet { sandbox async throws in
            let wallet = try await sandbox.createWallet()
            var card = TestCards.visa()
            card.fingerprintVersion = 0
            sandbox.cards.put(card)
            let saved = try await sandbox.service.addCard(
                walletID: wallet.id, token: card.token, idempotency: sandbox.key("add-1"))
            #expect(try await sandbox.service.rescopeCardFingerprints() == 0)

            // The vault rotates its root key; rewrap has not reached this card yet.
            sandbox.cards.rootVersion.withLock { $0 = 1 }
            #expect(try await sandbox.service.rescopeCardFingerprints() == 1)
            #expect(try await sandbox.service.cards(of: wallet.id).map(\.fingerprint) == ["fp-4111"])
            // Still under the old version: read again at the next start.
            #expect(try await sandbox.service.rescopeCardFingerprints() == 1)

            // Rewrap re-fingerprinted it: the new value is saved, once.
            card.fingerprint = "fp-4111-v1"
            card.fingerprintVersion = 1
            sandbox.cards.put(card)
            #expect(try await sandbox.service.rescopeCardFingerprints() == 1)
            #expect(try await sandbox.service.cards(of: wallet.id).map(\.fingerprint) == ["fp-4111-v1"])
            #expect(try await sandbox.service.rescopeCardFingerprints() == 0)
            // The same card tokenized again after the rotation is recognised.
            var again = TestCards.visa()
            again.fingerprint = "fp-4111-v1"
            again.fingerprintVersion = 1
            sandbox.cards.put(again)
            let second = try await sandbox.service.addCard(
                walletID: wallet.id, token: again.token, idempotency: sandbox.key("add-2"))
            #expect(!second.created && second.card.id == saved.card.id)
        }
    }
}
