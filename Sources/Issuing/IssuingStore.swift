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
}
