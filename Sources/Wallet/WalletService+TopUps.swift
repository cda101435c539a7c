public import CardTokens
public import Foundation
import GRDB
public import Ledger
import SQLiteSupport
import Synchronization

// Top-ups: a card on file charged through the authorization gateway, as a two-phase transfer.
extension WalletService {
    // MARK: Top-ups

    /// Charges a card on file through the authorization gateway, as a two-phase ledger transfer
    /// from the acquirer-receivable account to the wallet: the amount is held (pending) before
    /// the acquirer is asked, then posted if it approves or voided if it declines, in the same
    /// commit that records the outcome.
    ///
    /// The top-up's id is the acquirer reference and the pending transfer's id, and it is fixed
    /// at the first attempt of an Idempotency-Key. After `acquirer_timeout` or
    /// `acquirer_unavailable` the hold stays open and nothing is stored under the key: a retry
    /// with the same key sends the same reference, the acquirer answers it with its first
    /// decision, and the hold is posted or voided exactly once.
    /// - Throws: `wallet_not_found`, `card_not_found`, `currency_mismatch`, `invalid_amount`,
    ///   `unsupported_currency`, `amount_overflow` (before any charge), `token_not_found`,
    ///   `acquirer_*`, or an idempotency error.
    /// - Parameter origin: the caller's address, for the gateway's audit record (not part of the
    ///   idempotent request: a retry may come from elsewhere).
    public func topUp(
        walletID: String, cardID: String, amount: Int64, currency code: String, idempotency key: IdempotencyKey,
        tenant: String = Principal.defaultTenant, origin: String? = nil
    ) async throws -> TopUp {
        let request = Self.describe("top_up", walletID, cardID, String(amount), code)
        let now = clock()
        return try await idempotency.run(key, request: request, now: now) {
            (recorder: IdempotencyStore.Recorder<TopUp>) in
            // A call reaches the acquirer, so an earlier outcome is replayed before anything runs.
            if let stored = try await idempotency.storedOutcome(key, request: request, as: TopUp.self) {
                return try stored.get()
            }
            guard amount > 0 else {
                throw WalletError(.invalidAmount, "amount must be a positive number of minor units")
            }
            let currency = try Self.currency(code)
            guard try await walletCurrency(walletID, tenant: tenant) == currency else {
                throw WalletError(.currencyMismatch, "the wallet does not hold this currency")
            }
            let card = try await card(cardID, in: walletID)
            guard let authorizer else {
                throw WalletError(.acquirerNotConfigured, "no acquirer is configured (vault serve --acquirer-url)")
            }
            let topUpID = try await hold(
                key, walletID: walletID, cardID: cardID, amount: amount, currency: currency, now: now,
                recorder: recorder)
            let outcome: AuthorizationOutcome
            do {
                outcome = try await authorizer.authorize(
                    AuthorizationRequest(
                        token: card.token, amount: amount, currency: currency.code, reference: topUpID,
                        requestedBy: key.owner, tenant: tenant, origin: origin))
            } catch let error as AuthorizationError {
                switch error.code {
                case .tokenNotFound:
                    // The hold is released, and the attempt's status and the stored failure commit with it.
                    let failure = WalletError(.tokenNotFound, "the card's token no longer exists in the vault")
                    _ = try await ledger.createTransfers(
                        [Self.release(topUpID, walletID: walletID, currency: currency, amount: amount, post: false)],
                        recording: { db, results in
                            try Self.requireReleased(results[0])
                            try Self.setStatus("failed", of: topUpID, in: db)
                            try recorder.save(db, .failure(failure))
                        })
                    throw IdempotencyStore.RecordedFailure(error: failure)
                case .acquirerTimeout:
                    throw WalletError(
                        .acquirerTimeout, "the acquirer did not answer in time; retry with the same Idempotency-Key")
                case .acquirerUnavailable:
                    throw WalletError(
                        .acquirerUnavailable, "the acquirer is unavailable; retry with the same Idempotency-Key")
                case .notConfigured:
                    throw WalletError(.acquirerNotConfigured, "no acquirer is configured (vault serve --acquirer-url)")
                default:
                    throw WalletError(.internalFailure, "the authorization gateway failed (\(error.code))")
                }
            } catch {
                throw WalletError(.internalFailure, "the authorization gateway failed")
            }
            let approved = outcome.decision == .approved
            let topUp = TopUp(
                id: topUpID, walletID: walletID, cardID: cardID, amount: amount, currency: currency.code,
                status: approved ? .approved : .declined, authCode: approved ? outcome.authCode : nil,
                acquirerReference: outcome.acquirerReference, declineCode: approved ? nil : outcome.declineCode,
                createdAt: Date(milliseconds: now.milliseconds))
            // Approved: the hold is posted; declined: voided. The hold already passed every balance
            // check, so posting it cannot fail on an overflow after the card was charged.
            _ = try await ledger.createTransfers(
                [Self.release(topUpID, walletID: walletID, currency: currency, amount: amount, post: approved)],
                recording: { db, results in
                    try Self.requireReleased(results[0])
                    try Self.finish(topUp, in: db)
                    try recorder.save(db, .success(topUp))
                })
            return topUp
        }
    }

    /// The id of this key's top-up attempt: on a retry the existing one, whose hold is still
    /// open; else a new attempt, with a pending transfer (receivable → wallet) for the amount
    /// committed in the same transaction. Holding before the acquirer is asked means an
    /// approval can always be booked: whatever would refuse the credit (an overflowing balance)
    /// refuses the hold, before any card is charged.
    func hold(
        _ key: IdempotencyKey, walletID: String, cardID: String, amount: Int64, currency: Currency, now: Date,
        recorder: IdempotencyStore.Recorder<TopUp>
    ) async throws -> String {
        let existing = try await ledger.pool.read { db -> (id: String, matches: Bool)? in
            try Row.fetchOne(
                db, sql: "SELECT * FROM wallet_top_ups WHERE owner = ? AND idempotency_key = ?",
                arguments: [key.owner, key.key]
            ).map { row in
                (
                    row["id"],
                    row["wallet_id"] == walletID && row["card_id"] == cardID && row["amount"] == amount
                        && row["currency"] == currency.code
                )
            }
        }
        if let existing {
            guard existing.matches else {
                throw WalletError(
                    .idempotencyKeyReused, "this Idempotency-Key was already used with a different request")
            }
            return existing.id
        }
        let id = RandomID.make("tu", now: now)
        let results = try await ledger.createTransfers(
            [
                TransferRequest(
                    id: id, debitAccountID: Self.receivableAccountID(currency), creditAccountID: walletID,
                    amount: amount, kind: .pending(expiresAt: nil))
            ],
            recording: { db, results in
                guard results[0] == .created else { return }
                try db.execute(
                    sql: """
                        INSERT INTO wallet_top_ups (id, owner, idempotency_key, wallet_id, card_id, amount, currency,
                            status, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, 'authorizing', ?)
                        """,
                    arguments: [id, key.owner, key.key, walletID, cardID, amount, currency.code, now.milliseconds])
            })
        if case .failed(let error) = results[0] {
            try await idempotency.saveFailure(Self.walletError(error), with: recorder)
        }
        return id
    }

    /// The transfer that posts (approved) or voids (declined, token gone) a top-up's hold.
    static func release(
        _ topUpID: String, walletID: String, currency: Currency, amount: Int64, post: Bool
    ) -> TransferRequest {
        TransferRequest(
            id: topUpID + (post ? ":post" : ":void"), debitAccountID: receivableAccountID(currency),
            creditAccountID: walletID, amount: amount,
            kind: post ? .post(pendingID: topUpID) : .void(pendingID: topUpID))
    }

    static func requireReleased(_ result: TransferResult) throws {
        guard result == .created || result == .exists else {
            throw WalletError(.internalFailure, "a top-up's hold could not be released")
        }
    }

    static func setStatus(_ status: String, of topUpID: String, in db: Database) throws {
        try db.execute(sql: "UPDATE wallet_top_ups SET status = ? WHERE id = ?", arguments: [status, topUpID])
    }

    static func finish(_ topUp: TopUp, in db: Database) throws {
        try db.execute(
            sql: """
                UPDATE wallet_top_ups SET status = ?, auth_code = ?, acquirer_reference = ?, decline_code = ?
                WHERE id = ? AND status = 'authorizing'
                """,
            arguments: [
                topUp.status.rawValue, topUp.authCode, topUp.acquirerReference, topUp.declineCode, topUp.id,
            ])
    }
}
