public import CardTokens
public import Foundation
public import Ledger

/// Storage of the wallet side: wallets, cards on file, top-up attempts and the outcomes of
/// Idempotency-Keys, beside the ``LedgerStore`` they commit with. One implementation per backend
/// (``SQLiteWalletStore`` today, in `wallet.db` with the ledger); ``WalletService`` holds the
/// rules and speaks only to this protocol. Every method is one transaction, durable when it
/// returns.
///
/// "Write my rows in the same commit as the money" is expressed by values: a method that moves
/// money or creates a wallet takes a `recording` function that turns what the commit did into
/// ``WalletWrite``s, and the implementation writes them inside that commit, so a crash leaves
/// both or neither. A backend implements each write once, not each use case.
public protocol WalletStore: Sendable {
    /// The ledger the wallet's money lives in (the same database: they share commits).
    var ledger: any LedgerStore { get }

    // MARK: Wallets

    /// Creates a wallet with the next virtual account number of `numbering` and its ledger
    /// accounts, and `recording`'s writes, in one commit.
    /// - Throws: `account_numbers_exhausted`; ``OutcomeAlreadyStored`` from an outcome write.
    func createWallet(
        _ wallet: NewWallet, numbering: VirtualAccountNumbering,
        recording: @escaping @Sendable (WalletSummary) throws -> [WalletWrite]
    ) async throws -> WalletSummary
    /// The wallet `id` of `tenant` with its balances, or `nil` (also for another tenant's).
    func wallet(_ id: String, tenant: String) async throws -> WalletSummary?
    /// The currency and tenant of wallet `id` (neither ever changes), or `nil`.
    func walletEntry(_ id: String) async throws -> WalletEntry?

    // MARK: Cards on file

    /// Saves `card` unless the wallet already holds a card of its fingerprint, and `recording`'s
    /// writes, in one commit. With `replacingToken`, the existing card of that fingerprint saved
    /// under that (dead) token first takes `card`'s token and expiry.
    /// - Returns: the card the wallet now holds under the fingerprint, and whether it is `card`.
    func saveCard(
        _ card: CardOnFile, fingerprintScope: Int64, replacingToken: String?,
        recording: @escaping @Sendable (_ saved: CardOnFile, _ created: Bool) throws -> [WalletWrite]
    ) async throws -> (card: CardOnFile, created: Bool)
    /// The token under which `walletID` holds the card `fingerprint`, or `nil`.
    func savedToken(of walletID: String, fingerprint: String) async throws -> String?
    /// The cards saved to a wallet, oldest first.
    func cards(of walletID: String) async throws -> [CardOnFile]
    /// The cards whose fingerprint scope is below `scope`, with their wallet's tenant.
    func cards(fingerprintScopeBelow scope: Int64) async throws -> [(id: String, token: Token, tenant: String)]
    /// Sets a card's fingerprint and scope; `nil` (its token is gone) stores one that matches
    /// nothing. If the wallet saved the same card again meanwhile under `fingerprint`, the old
    /// entry gets one that matches nothing too (a wallet holds a fingerprint once).
    func setFingerprint(of cardID: String, to fingerprint: String?, scope: Int64) async throws

    // MARK: Money and its records

    /// Creates `transfers` in the ledger and, in the same commit, the writes `recording` makes of
    /// their results. If `recording` throws, none of these transfers is made and the error is
    /// rethrown (other callers sharing the commit are not affected).
    func commit(
        _ transfers: [TransferRequest], recording: @escaping @Sendable ([TransferResult]) throws -> [WalletWrite]
    ) async throws -> [TransferResult]
    /// Writes on their own, in one commit.
    func write(_ writes: [WalletWrite]) async throws
    /// Everything a top-up needs before it holds money, in one read: the key's stored outcome
    /// and attempt, the wallet, and the card.
    func topUpContext(key: IdempotencyKey, walletID: String, cardID: String) async throws -> TopUpContext
    /// Top-up attempts still `authorizing` (the acquirer's answer never came back) created before
    /// `cutoff`, oldest first, at most `limit`, each with the Idempotency-Key it belongs to.
    func unresolvedTopUps(
        createdBefore cutoff: Date, limit: Int
    ) async throws -> [(
        attempt: TopUpAttempt, key: IdempotencyKey
    )]

    // MARK: Idempotency outcomes

    /// The stored outcome of `key`, or `nil`.
    func outcome(of key: IdempotencyKey) async throws -> StoredIdempotencyOutcome?
    /// Deletes the outcomes stored before `cutoff`, oldest first, in transactions of at most
    /// `batchSize` rows (so requests wait for at most one short write); returns how many.
    func purgeOutcomes(before cutoff: Date, batchSize: Int) async throws -> Int
}

/// What a store writes in the commit of the change it belongs to.
public enum WalletWrite: Sendable {
    /// The outcome of an Idempotency-Key.
    /// - Throws (from the commit): ``OutcomeAlreadyStored`` if the key has one already.
    case outcome(StoredIdempotencyOutcome, key: IdempotencyKey)
    /// A new top-up attempt (`authorizing`), keyed by its Idempotency-Key.
    case topUpAttempt(TopUpAttempt, key: IdempotencyKey)
    /// The attempt ended without a decision (its card's token is gone).
    case topUpFailed(id: String)
    /// The acquirer's decision on an attempt still `authorizing`.
    case topUpDecided(TopUp)
}

/// Thrown by a commit whose ``WalletWrite/outcome(_:key:)`` found the key's outcome already
/// stored (a concurrent duplicate won): the commit rolls back and the stored outcome is replayed.
public struct OutcomeAlreadyStored: Error {
    public init() {}
}

/// A wallet to create: its row and ledger accounts.
public struct NewWallet: Sendable {
    public var id: String
    public var ownerRef: String
    public var currency: Currency
    public var tenant: String
    public var createdAt: Date
    /// Its own ledger account's flags.
    public var flags: AccountFlags
    /// Other ledger accounts of the currency that must exist (created once, shared by wallets).
    public var sharedAccounts: [String]
}

/// The two fields of a wallet that never change.
public struct WalletEntry: Sendable, Hashable {
    public var currency: String
    public var tenant: String
}

/// An Idempotency-Key's outcome as stored: the request it was bound to and the encoded outcome.
public struct StoredIdempotencyOutcome: Sendable, Hashable {
    public var request: String
    public var outcome: Data
    public var createdAt: Date
}

/// A top-up as first attempted under an Idempotency-Key: its id is the hold's and the acquirer
/// reference, fixed for every retry of the key.
public struct TopUpAttempt: Sendable, Hashable {
    public var id: String
    public var walletID: String
    public var cardID: String
    public var amount: Int64
    public var currency: String
    public var createdAt: Date
}

/// The reads at the start of a top-up (``WalletStore/topUpContext(key:walletID:cardID:)``).
public struct TopUpContext: Sendable {
    public var outcome: StoredIdempotencyOutcome?
    public var attempt: TopUpAttempt?
    public var wallet: WalletEntry?
    /// The card `cardID` if it is saved to the wallet.
    public var card: CardOnFile?
}
