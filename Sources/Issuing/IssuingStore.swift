import CardTokens
public import Foundation
public import Wallet

/// Storage of virtual cards, beside the wallet's store and the ledger they commit with. One
/// implementation per backend (``SQLiteIssuingStore`` today, in `wallet.db`); every method is
/// one transaction, durable when it returns. As in ``WalletStore``, a method that changes
/// something takes a `recording` function whose ``WalletWrite``s (an Idempotency-Key's outcome)
/// commit with the change.
public protocol IssuingStore: Sendable {
    /// Stores a new card and `recording`'s writes in one commit.
    func insert(_ card: VirtualCard, recording: @escaping @Sendable (VirtualCard) throws -> [WalletWrite]) async throws
    /// The card `id`, or `nil`.
    func card(_ id: String) async throws -> VirtualCard?
    /// A wallet's cards, oldest first.
    func cards(of walletID: String) async throws -> [VirtualCard]
    /// Reads card `id`, applies `change` to it and stores the result with `recording`'s writes,
    /// in one transaction: concurrent changes of a card are serialised. `nil` if there is no
    /// such card (nothing is written).
    func update(
        _ id: String, change: @escaping @Sendable (VirtualCard) throws -> VirtualCard,
        recording: @escaping @Sendable (VirtualCard) throws -> [WalletWrite]
    ) async throws -> VirtualCard?

    // MARK: The card network

    /// The authorization stored under `reference`, if any.
    /// - Throws: `network_reference_reused` if it was stored for another request (`bound`).
    func storedAuthorization(reference: String, bound: String) async throws -> CardAuthorization?
    /// Decides and records a network authorization in one transaction, so that concurrent
    /// authorizations of a card or a wallet see each other:
    /// - the outcome stored under `request.networkReference` is replayed (the same reference with
    ///   other fields throws `network_reference_reused`);
    /// - else the card of `request.token` and its wallet's currency are read and `decide` asked
    ///   (a request the CDE declined, or a token that is no card of ours, is declined without it);
    /// - an approval holds the amount on the ledger (pending, wallet → the currency's
    ///   `WalletService.cardNetworkAccountID(_:)`), under id `id`: a hold the ledger refuses is
    ///   declined `insufficient_funds` and the card is left as it was; a hold it takes stores the
    ///   card as the decision left it (spent, single-use closed, merchant lock);
    /// - the outcome is stored under the reference, and returned.
    func authorize(
        _ request: CardAuthorizationRequest, id: String, authCode: String, at now: Date,
        decide: @escaping @Sendable (_ card: VirtualCard, _ walletCurrency: String) -> AuthorizationDecision
    ) async throws -> CardAuthorization

    /// Books (part of) what an approved authorization holds, in one transaction with its record:
    /// the hold is voided and, linked with it, the amount moves from the wallet to the network
    /// account and what is left stays held under a new hold. Replays by network reference.
    /// - Throws: `authorization_not_found`, `authorization_released`, `amount_exceeds_authorization`,
    ///   `network_reference_reused`.
    func clear(_ request: ClearingRequest, id: String, at now: Date) async throws -> CardTransaction
    /// Gives back (part of) what an approved authorization holds, and the card's spend counters
    /// for it (in the windows it was spent in, if still current). Replays by network reference.
    /// - Throws: as ``clear(_:id:at:)``.
    func reverse(_ request: ReversalRequest, id: String, at now: Date) async throws -> CardTransaction
    /// Moves a refund of an authorization's clearings from the network account to the card's
    /// wallet: at most what was cleared less what was refunded already. Replays by network reference.
    /// - Throws: `authorization_not_found` (also for another card's), `currency_mismatch`,
    ///   `amount_exceeds_authorization`, `network_reference_reused`.
    func refund(_ request: RefundRequest, id: String, at now: Date) async throws -> CardTransaction
    /// Releases every hold of an authorization approved before `cutoff` that is still held, and
    /// the spend counters for it; returns how many.
    func expireHolds(approvedBefore cutoff: Date, at now: Date) async throws -> Int
    /// A card's history, oldest first, after `sequence`.
    func transactions(of cardID: String, after sequence: Int64, limit: Int) async throws -> [CardTransaction]
}
