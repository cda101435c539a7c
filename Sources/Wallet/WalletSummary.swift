public import Foundation
public import Ledger

/// A wallet as the API shows it: owner, currency, virtual account number and balances.
public struct WalletSummary: Sendable, Hashable, Codable {
    public var id: String
    /// The caller's own reference for the owner (e.g. a customer id); never card data.
    public var ownerRef: String
    public var currency: String
    /// The wallet's virtual account number: permanent, never reused.
    public var accountNumber: IBAN
    public var balances: Balances
    public var createdAt: Date
}
