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

    /// What the network reference is bound to: the fields that are not card data. Not the card's
    /// token or the CDE's verdict: were they part of it, resending a stored reference with other
    /// card data would answer 409 exactly when the new PAN, expiry or CVV gave another verdict,
    /// an oracle that writes nothing (attacker review). A retry is answered from the store before
    /// its card data is looked at (``CardNetworkService/storedAuthorization(_:)``).
    var idempotentDescription: String {
        Self.describe(
            networkReference: networkReference, amount: amount, currency: currency, merchant: merchant)
    }

    static func describe(networkReference: String, amount: Int64, currency: String, merchant: Merchant) -> String {
        [
            "authorization", networkReference, String(amount), currency, merchant.id, merchant.name, merchant.mcc,
            merchant.country,
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

/// A clearing of (part of) an approved authorization: the purchase is booked.
public struct ClearingRequest: Sendable, Hashable {
    public var networkReference: String
    public var authorizationID: String
    public var amount: Int64

    public init(networkReference: String, authorizationID: String, amount: Int64) {
        self.networkReference = networkReference
        self.authorizationID = authorizationID
        self.amount = amount
    }
}

/// A reversal of (part of) what an authorization still holds; `nil` reverses all of it.
public struct ReversalRequest: Sendable, Hashable {
    public var networkReference: String
    public var authorizationID: String
    public var amount: Int64?

    public init(networkReference: String, authorizationID: String, amount: Int64? = nil) {
        self.networkReference = networkReference
        self.authorizationID = authorizationID
        self.amount = amount
    }
}

/// A merchant's refund of a cleared purchase: money back to the card's wallet, never more than
/// the authorization's clearings less what was refunded of them already.
public struct RefundRequest: Sendable, Hashable {
    public var networkReference: String
    public var cardID: String
    /// The authorization whose clearings are refunded.
    public var authorizationID: String
    public var amount: Int64
    public var currency: String
    public var merchant: Merchant

    public init(
        networkReference: String, cardID: String, authorizationID: String, amount: Int64, currency: String,
        merchant: Merchant
    ) {
        self.networkReference = networkReference
        self.cardID = cardID
        self.authorizationID = authorizationID
        self.amount = amount
        self.currency = currency
        self.merchant = merchant
    }
}

/// One entry of a virtual card's history (`GET /v1/virtual_cards/{id}/transactions`).
public struct CardTransaction: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable {
        case authorization, clearing, reversal, refund, expiry
    }

    /// Order of the card's history, and the cursor of its pages.
    public var sequence: Int64
    public var id: String
    public var kind: Kind
    public var cardID: String
    /// The authorization a clearing, reversal or expiry belongs to (an authorization's own id).
    public var authorizationID: String?
    public var networkReference: String?
    public var amount: Int64
    public var currency: String
    public var merchant: Merchant?
    /// Authorizations only.
    public var approved: Bool?
    public var declineCode: DeclineCode?
    public var limitWindow: LimitWindow?
    public var createdAt: Date
}
