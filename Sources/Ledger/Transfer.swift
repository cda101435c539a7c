public import Foundation

/// What a transfer does.
public enum TransferKind: Sendable, Hashable {
    /// Moves `amount` at once (posted).
    case single
    /// Holds `amount` (pending) until posted, voided or expired at `expiresAt`, which must be
    /// in the future when the transfer is created (else `invalid_expiry`); `nil` never expires.
    case pending(expiresAt: Date?)
    /// Posts a pending transfer: `amount` of it (at most its amount; the rest is released).
    case post(pendingID: String)
    /// Releases a pending transfer without moving anything.
    case void(pendingID: String)
}

/// A transfer to create. Its `id` makes it idempotent: creating it again with the same fields
/// does nothing (`exists`); with other fields it is refused. Only transfers that were made
/// count: the id of a refused transfer is not kept and may be used again.
public struct TransferRequest: Sendable, Hashable {
    public var id: String
    /// For `post` and `void`: empty, or the pending transfer's (else
    /// `pending_transfer_has_different_debit_account`); the pending transfer's is used.
    public var debitAccountID: String
    /// For `post` and `void`: empty, or the pending transfer's (else
    /// `pending_transfer_has_different_credit_account`); the pending transfer's is used.
    public var creditAccountID: String
    /// Minor units, positive. For `post`, the amount to post (≤ the pending amount); for `void`,
    /// ignored (use the pending amount or 0).
    public var amount: Int64
    public var kind: TransferKind
    /// This transfer and the next in the same call succeed or fail together.
    public var linked: Bool

    public init(
        id: String, debitAccountID: String, creditAccountID: String, amount: Int64, kind: TransferKind = .single,
        linked: Bool = false
    ) {
        self.id = id
        self.debitAccountID = debitAccountID
        self.creditAccountID = creditAccountID
        self.amount = amount
        self.kind = kind
        self.linked = linked
    }
}

/// The life of a pending transfer; each release happens exactly once.
public enum PendingState: String, Sendable, Codable {
    case pending, posted, voided, expired
}

/// A stored transfer.
public struct Transfer: Sendable, Hashable {
    public var id: String
    public var debitAccountID: String
    public var creditAccountID: String
    public var amount: Int64
    public var currency: Currency
    public var kind: String
    public var pendingID: String?
    public var expiresAt: Date?
    /// For pending transfers: where they are in their life.
    public var state: PendingState?
    public var createdAt: Date
}

/// What became of one request.
public enum TransferResult: Sendable, Hashable {
    case created
    /// The same transfer already existed: nothing changed (idempotent retry).
    case exists
    case failed(LedgerError)
}
