public import Foundation

/// Money moved from one wallet to another (one posted ledger transfer).
public struct WalletTransfer: Sendable, Hashable, Codable {
    public var id: String
    public var fromWallet: String
    public var toWallet: String
    public var amount: Int64
    public var currency: String
    public var createdAt: Date
}
