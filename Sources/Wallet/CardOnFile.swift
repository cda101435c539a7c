public import CardTokens
public import Foundation

/// A card saved to a wallet: a token and what may be shown of the card, never the PAN.
public struct CardOnFile: Sendable, Hashable, Codable {
    public var id: String
    public var walletID: String
    public var token: Token
    public var bin: String
    public var last4: String
    public var brand: CardBrand
    public var expMonth: Int
    public var expYear: Int
    /// The vault's keyed fingerprint of the PAN: the same card has the same fingerprint.
    public var fingerprint: String
    public var createdAt: Date
}
