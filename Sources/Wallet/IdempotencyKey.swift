import CardTokens

/// A client's `Idempotency-Key`, scoped to the API key that sent it (two clients may pick the
/// same key without seeing each other's responses).
public struct IdempotencyKey: Sendable, Hashable {
    /// The credential id of the caller.
    public let owner: String
    public let key: String

    /// - Throws: ``WalletError`` `invalid_idempotency_key` unless `key` is 1 to 255 printable
    ///   ASCII characters with no card number in them (``CardNumberDetector``).
    public init(owner: String, key: String) throws(WalletError) {
        guard (1...255).contains(key.utf8.count), key.utf8.allSatisfy({ (32...126).contains($0) }) else {
            throw WalletError(.invalidIdempotencyKey, "Idempotency-Key must be 1 to 255 printable ASCII characters")
        }
        // Keys are stored in wallet.db, outside the card data environment.
        guard !CardNumberDetector.containsCardNumber(key) else {
            throw WalletError(.invalidIdempotencyKey, "Idempotency-Key must not contain a card number")
        }
        self.owner = owner
        self.key = key
    }
}
