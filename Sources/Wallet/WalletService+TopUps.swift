public import CardTokens
public import Foundation
import Ledger

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
            (recorder: IdempotencyRules.Recorder<TopUp>) in
            // One read for everything the top-up needs before it holds money.
            let context = try await store.topUpContext(key: key, walletID: walletID, cardID: cardID)
            // A call reaches the acquirer, so an earlier outcome is replayed before anything runs.
            if let stored = try idempotency.decode(context.outcome, request: request, as: TopUp.self) {
                return try stored.get()
            }
            guard amount > 0 else {
                throw WalletError(.invalidAmount, "amount must be a positive number of minor units")
            }
            let currency = try Self.currency(code)
            guard let wallet = context.wallet, wallet.tenant == tenant else { throw WalletError.walletNotFound }
            guard try remember(wallet, of: walletID).currency == currency else {
                throw WalletError(.currencyMismatch, "the wallet does not hold this currency")
            }
            guard let card = context.card else {
                throw WalletError(.cardNotFound, "the wallet has no card with this card_id")
            }
            guard let authorizer else {
                throw WalletError(.acquirerNotConfigured, "no acquirer is configured (vault serve --acquirer-url)")
            }
            let topUpID = try await hold(
                key, existing: context.attempt, walletID: walletID, cardID: cardID, amount: amount,
                currency: currency, now: now, recorder: recorder)
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
                    _ = try await store.commit(
                        [Self.release(topUpID, walletID: walletID, currency: currency, amount: amount, post: false)],
                        recording: { results in
                            try Self.requireReleased(results[0])
                            return [.topUpFailed(id: topUpID), try recorder.write(.failure(failure))]
                        })
                    throw IdempotencyRules.RecordedFailure(error: failure)
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
                createdAt: now)
            // Approved: the hold is posted; declined: voided. The hold already passed every balance
            // check, so posting it cannot fail on an overflow after the card was charged.
            _ = try await store.commit(
                [Self.release(topUpID, walletID: walletID, currency: currency, amount: amount, post: approved)],
                recording: { results in
                    try Self.requireReleased(results[0])
                    return [.topUpDecided(topUp), try recorder.write(.success(topUp))]
                })
            return topUp
        }
    }

    /// The id of this key's top-up attempt: on a retry the `existing` one, whose hold is still
    /// open; else a new attempt, with a pending transfer (receivable → wallet) for the amount
    /// committed in the same transaction. Holding before the acquirer is asked means an
    /// approval can always be booked: whatever would refuse the credit (an overflowing balance)
    /// refuses the hold, before any card is charged.
    func hold(
        _ key: IdempotencyKey, existing: TopUpAttempt?, walletID: String, cardID: String, amount: Int64,
        currency: Currency, now: Date, recorder: IdempotencyRules.Recorder<TopUp>
    ) async throws -> String {
        if let existing {
            guard
                existing.walletID == walletID, existing.cardID == cardID, existing.amount == amount,
                existing.currency == currency.code
            else {
                throw WalletError(
                    .idempotencyKeyReused, "this Idempotency-Key was already used with a different request")
            }
            return existing.id
        }
        let attempt = TopUpAttempt(
            id: RandomID.make("tu", now: now), walletID: walletID, cardID: cardID, amount: amount,
            currency: currency.code, createdAt: now)
        let results = try await store.commit(
            [
                TransferRequest(
                    id: attempt.id, debitAccountID: Self.receivableAccountID(currency), creditAccountID: walletID,
                    amount: amount, kind: .pending(expiresAt: nil))
            ],
            recording: { results in results[0] == .created ? [.topUpAttempt(attempt, key: key)] : [] })
        if case .failed(let error) = results[0] {
            try await idempotency.saveFailure(Self.walletError(error), with: recorder)
        }
        return attempt.id
    }

    /// What one pass of ``resolveUnknownTopUps(olderThan:abandonAfter:now:)`` did.
    public struct TopUpResolution: Sendable, Hashable {
        /// Answered by the acquirer: posted (approved) or voided (declined).
        public var decided = 0
        /// The ids of those without an answer within the time allowed: voided, to be reported
        /// (the acquirer may still hold a charge: reconcile by id).
        public var abandoned: [String] = []
        /// Still unknown (the acquirer could not say now, or a retry holds the key): next pass.
        public var pending = 0
        public init() {}
    }

    /// Settles top-ups whose outcome is unknown (the acquirer's answer was lost: a timeout, a
    /// 5xx, a crash) once they are older than `age`: asks the acquirer for its decision on the
    /// top-up's reference and posts or voids the hold; without a decision (the acquirer cannot
    /// say, or has no record yet) it asks again next pass, and voids the hold after
    /// `abandonAfter`. Each one's outcome is stored under
    /// its Idempotency-Key in the same commit, so a client's retry answers it; an attempt whose
    /// key a request holds now is left to that request.
    @discardableResult
    public func resolveUnknownTopUps(
        olderThan age: TimeInterval, abandonAfter: TimeInterval, now: Date? = nil
    ) async throws -> TopUpResolution {
        var resolution = TopUpResolution()
        guard let authorizer else { return resolution }
        let now = now ?? clock()
        for (attempt, key) in try await store.unresolvedTopUps(createdBefore: now.addingTimeInterval(-age), limit: 500)
        {
            // One attempt that cannot be settled now (a store error, a hold a retry released
            // another way meanwhile) is left for the next pass; it does not stop the others.
            let handled = try? await idempotency.whileHolding(key) { () async throws -> Bool in
                func abandonIfDue() async throws -> Bool {
                    guard now.timeIntervalSince(attempt.createdAt) >= abandonAfter else { return false }
                    try await settle(
                        attempt, key: key, now: now,
                        as: .failure(
                            WalletError(
                                .topUpNotCompleted,
                                "the acquirer gave no answer in time; nothing was credited; reconcile with the "
                                    + "acquirer by the top-up's id")))
                    resolution.abandoned.append(attempt.id)
                    return true
                }
                let answer: AuthorizationOutcome?
                do {
                    answer = try await authorizer.outcome(ofReference: attempt.id)
                } catch {
                    return try await abandonIfDue()
                }
                // A 404 is not proof the acquirer never got it: the first request may still be on
                // its way, or the 404 may come from a proxy. It is asked again each pass, and only
                // the time allowed ends it (review of this pass).
                guard let answer else { return try await abandonIfDue() }
                let approved = answer.decision == .approved
                try await settle(
                    attempt, key: key, now: now,
                    as: .success(
                        TopUp(
                            id: attempt.id, walletID: attempt.walletID, cardID: attempt.cardID, amount: attempt.amount,
                            currency: attempt.currency, status: approved ? .approved : .declined,
                            authCode: approved ? answer.authCode : nil, acquirerReference: answer.acquirerReference,
                            declineCode: approved ? nil : answer.declineCode, createdAt: attempt.createdAt)))
                resolution.decided += 1
                return true
            }
            if handled != true { resolution.pending += 1 }
        }
        return resolution
    }

    /// Posts (an approved top-up) or voids the hold of `attempt`, with its decision or failure
    /// and its key's outcome, in one commit. A hold already released (by a retry that got there
    /// first) leaves everything as it is.
    private func settle(
        _ attempt: TopUpAttempt, key: IdempotencyKey, now: Date, as outcome: StoredOutcome<TopUp>
    ) async throws {
        let currency = try Self.currency(attempt.currency)
        let request = Self.describe(
            "top_up", attempt.walletID, attempt.cardID, String(attempt.amount), attempt.currency)
        let recorder = IdempotencyRules.Recorder<TopUp>(key: key, request: request, now: now)
        let post: Bool
        let decision: WalletWrite
        switch outcome {
        case .success(let topUp):
            post = topUp.status == .approved
            decision = .topUpDecided(topUp)
        case .failure:
            post = false
            decision = .topUpFailed(id: attempt.id)
        }
        let encoded = try recorder.encode(outcome)
        do {
            _ = try await store.commit(
                [
                    Self.release(
                        attempt.id, walletID: attempt.walletID, currency: currency, amount: attempt.amount, post: post)
                ],
                recording: { results in
                    try Self.requireReleased(results[0])
                    return [decision, recorder.write(encoded: encoded)]
                })
        } catch is OutcomeAlreadyStored {
            return
        }
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
}
