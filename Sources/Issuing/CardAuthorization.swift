public import CardTokens
public import Foundation

/// A card network's authorization request as the wallet side gets it from the CDE's intake: the
/// PAN already resolved to its token (or found to be no card of ours), the expiry and CVV
/// already checked there.
public struct CardAuthorizationRequest: Sendable, Hashable {
    /// The network's id of this message: a retry carries the same one.
    public var networkReference: String
    /// The card's token, or `nil` when the CDE declined before any token was involved.
    public var token: Token?
    /// A decline the CDE already decided (`card_not_found`, `card_expired`, `incorrect_cvv`).
    public var cdeDecline: DeclineCode?
    public var amount: Int64
    public var currency: String
    public var merchant: Merchant

    public init(
        networkReference: String, token: Token?, cdeDecline: DeclineCode? = nil, amount: Int64, currency: String,
        merchant: Merchant
    ) {
        self.networkReference = networkReference
        self.token = token
        self.cdeDecline = cdeDecline
        self.amount = amount
        self.currency = currency
        self.merchant = merchant
    }

    /// What the network reference is bound to: a retry must carry the same (the CDE's verdict
    /// is part of it, so a retry with another CVV is another request, not a replay).
    var idempotentDescription: String {
        [
            networkReference, token?.rawValue ?? "-", cdeDecline?.rawValue ?? "-", String(amount), currency,
            merchant.id, merchant.name, merchant.mcc, merchant.country,
        ].joined(separator: "\u{1F}")
    }
}

/// The answer to an authorization, as stored and as replayed for a retry.
public struct CardAuthorization: Sendable, Hashable, Codable {
    public var id: String
    public var networkReference: String
    /// The card and its wallet; `nil` when no card of ours was found.
    public var cardID: String?
    public var walletID: String?
    public var amount: Int64
    public var currency: String
    public var merchant: Merchant
    public var approved: Bool
    public var declineCode: DeclineCode?
    /// With `spend_limit_exceeded`: the window.
    public var limitWindow: LimitWindow?
    /// With an approval: the code the network passes to the merchant.
    public var authCode: String?
    public var createdAt: Date
}

/// Thrown when a network reference comes again with other fields: the network's bug, answered
/// `409` rather than with the first decision.
public struct NetworkReferenceReused: Error, Sendable {
    public init() {}
}
