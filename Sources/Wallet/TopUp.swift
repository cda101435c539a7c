public import Foundation

/// A charge of a card on file that credits a wallet when the acquirer approves it.
public struct TopUp: Sendable, Hashable, Codable {
    public enum Status: String, Sendable, Hashable, Codable {
        /// Approved and booked: the wallet was credited in the same commit.
        case approved
        /// Declined by the acquirer; nothing was booked.
        case declined
    }

    /// Also the reference sent to the acquirer and the id of the ledger transfer.
    public var id: String
    public var walletID: String
    public var cardID: String
    public var amount: Int64
    public var currency: String
    public var status: Status
    public var authCode: String?
    public var acquirerReference: String?
    public var declineCode: String?
    public var createdAt: Date
}
