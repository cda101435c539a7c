public import Foundation

/// One line of a wallet's statement.
public struct StatementEntry: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case topUp = "top_up"
        case transferIn = "transfer_in"
        case transferOut = "transfer_out"
        /// A virtual card's purchase, as the network cleared it.
        case cardPurchase = "card_purchase"
        /// A merchant's refund to a virtual card.
        case cardRefund = "card_refund"
    }

    /// The ledger's sequence number: statements are ordered by it and paginate after it.
    public var sequence: Int64
    /// The ledger transfer's id (a top-up's or a transfer's id).
    public var id: String
    public var kind: Kind
    /// Signed minor units: positive credits the wallet, negative debits it.
    public var amount: Int64
    public var currency: String
    /// The other wallet of a transfer.
    public var counterpartyWallet: String?
    public var createdAt: Date
}
