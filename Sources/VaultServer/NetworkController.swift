import CardIssuing
@_spi(CardholderData) import CardTokens
import Foundation
import Hummingbird
import Issuing
import TokenVault
import Wallet

/// The card network's routes on their own listener (scope `network`): authorizations (PAN in,
/// decision out), clearings, reversals and refunds of the virtual cards this vault issued.
/// The PAN, expiry and CVV are checked inside the CDE (``VaultCardIssuer/check(_:)``); the
/// decision is made by the wallet side from the token alone. No response or log holds a PAN or
/// CVV; every message is idempotent by its `network_reference`.
struct NetworkController {
    let issuer: VaultCardIssuer
    let network: CardNetworkService
    static let bodyLimit = 16 * 1024

    func addRoutes(to router: Router<VaultRequestContext>) {
        router.post("/v1/network/authorizations", use: authorize)
        router.post("/v1/network/clearings", use: clear)
        router.post("/v1/network/reversals", use: reverse)
        router.post("/v1/network/refunds", use: refund)
    }

    // MARK: Request bodies

    struct MerchantBody: Decodable {
        var merchant: Merchant

        enum CodingKeys: String, CodingKey { case id, name, mcc, country }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            merchant = Merchant(
                id: try container.decode(String.self, forKey: .id),
                name: try container.decode(String.self, forKey: .name),
                mcc: try container.decode(String.self, forKey: .mcc),
                country: try container.decode(String.self, forKey: .country))
        }
    }

    struct AuthorizationBody: Decodable {
        var networkReference: String
        var pan: String
        var expMonth: Int
        var expYear: Int
        var cvv: String
        var amount: Int64
        var currency: String
        var merchant: Merchant

        enum CodingKeys: String, CodingKey {
            case pan, cvv, amount, currency, merchant
            case networkReference = "network_reference"
            case expMonth = "exp_month"
            case expYear = "exp_year"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            networkReference = try container.decode(String.self, forKey: .networkReference)
            pan = try container.decode(String.self, forKey: .pan)
            expMonth = try container.decodeInteger(Int.self, forKey: .expMonth)
            expYear = try container.decodeInteger(Int.self, forKey: .expYear)
            // Required: without it, a PAN and an expiry alone would be enough to spend (review of
            // this listener); a network that cannot send it cannot use the card.
            cvv = try container.decode(String.self, forKey: .cvv)
            // A malformed expiry or CVV is the network's error (400), whatever the PAN: only a PAN that
            // is no card of ours is a decline.
            guard (1...12).contains(expMonth) else {
                throw CardValidationError(.expiryMonth, "exp_month must be 1 to 12")
            }
            guard (2000...2099).contains(expYear) else {
                throw CardValidationError(.expiryYear, "exp_year must be a four-digit year")
            }
            guard (3...4).contains(cvv.utf8.count), cvv.utf8.allSatisfy({ (48...57).contains($0) }) else {
                throw CardValidationError(.cvv, "cvv must be 3 or 4 digits")
            }
            amount = try container.decodeInteger(Int64.self, forKey: .amount)
            currency = try container.decode(String.self, forKey: .currency)
            merchant = try container.decode(MerchantBody.self, forKey: .merchant).merchant
        }
    }

    struct ClearingBody: Decodable {
        var networkReference: String
        var authorizationID: String
        var amount: Int64?

        enum CodingKeys: String, CodingKey {
            case amount
            case networkReference = "network_reference"
            case authorizationID = "authorization_id"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            networkReference = try container.decode(String.self, forKey: .networkReference)
            authorizationID = try container.decode(String.self, forKey: .authorizationID)
            amount = container.contains(.amount) ? try container.decodeInteger(Int64.self, forKey: .amount) : nil
        }
    }

    struct RefundBody: Decodable {
        var request: RefundRequest

        enum CodingKeys: String, CodingKey {
            case amount, currency, merchant
            case networkReference = "network_reference"
            case cardID = "virtual_card_id"
            case authorizationID = "authorization_id"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            request = RefundRequest(
                networkReference: try container.decode(String.self, forKey: .networkReference),
                cardID: try container.decode(String.self, forKey: .cardID),
                authorizationID: try container.decode(String.self, forKey: .authorizationID),
                amount: try container.decodeInteger(Int64.self, forKey: .amount),
                currency: try container.decode(String.self, forKey: .currency),
                merchant: try container.decode(MerchantBody.self, forKey: .merchant).merchant)
        }
    }

    // MARK: Handlers

    @Sendable func authorize(_ request: Request, context: VaultRequestContext) async throws -> Response {
        _ = try context.require(.network)
        let body = try await JSONRequest.decode(AuthorizationBody.self, from: request, limit: Self.bodyLimit)
        // A known reference is answered from the store before its card data is looked at.
        let withoutCard = CardAuthorizationRequest(
            networkReference: body.networkReference, token: nil, cdeDecline: .cardNotFound, amount: body.amount,
            currency: body.currency, merchant: body.merchant)
        // Every other field is checked before the card data is: a malformed message costs no card
        // lookup, so it cannot time one.
        try CardNetworkService.validate(withoutCard)
        if let stored = try await network.storedAuthorization(withoutCard) {
            return try JSONResponse.make(NetworkAuthorizationResponse(stored))
        }
        var token: Token?
        var decline: DeclineCode?
        do {
            // The expiry is checked against the card's own below (and the card's against the
            // date by the decision), so an expired card is a decline, not a malformed message.
            let card = try CardInput(
                pan: body.pan, expMonth: body.expMonth, expYear: body.expYear, cvv: body.cvv, now: .distantPast)
            switch try await issuer.check(card) {
            case .card(let found): token = found
            case .notFound: decline = .cardNotFound
            case .mismatch(let found): (token, decline) = (found, .incorrectCVV)
            }
        } catch let error as CardValidationError where [.panNotNumeric, .panLength, .panLuhn].contains(error.code) {
            // No card of ours has a malformed number: a decline the network can act on.
            decline = .cardNotFound
        }
        let outcome = try await network.authorize(
            CardAuthorizationRequest(
                networkReference: body.networkReference, token: token, cdeDecline: decline, amount: body.amount,
                currency: body.currency, merchant: body.merchant))
        return try JSONResponse.make(NetworkAuthorizationResponse(outcome))
    }

    @Sendable func clear(_ request: Request, context: VaultRequestContext) async throws -> Response {
        _ = try context.require(.network)
        let body = try await JSONRequest.decode(ClearingBody.self, from: request, limit: Self.bodyLimit)
        guard let amount = body.amount else {
            throw APIError(.badRequest, code: "missing_field", message: "amount is required")
        }
        let cleared = try await network.clear(
            ClearingRequest(
                networkReference: body.networkReference, authorizationID: body.authorizationID, amount: amount))
        return try JSONResponse.make(CardTransactionResponse(cleared))
    }

    @Sendable func reverse(_ request: Request, context: VaultRequestContext) async throws -> Response {
        _ = try context.require(.network)
        let body = try await JSONRequest.decode(ClearingBody.self, from: request, limit: Self.bodyLimit)
        let reversed = try await network.reverse(
            ReversalRequest(
                networkReference: body.networkReference, authorizationID: body.authorizationID, amount: body.amount))
        return try JSONResponse.make(CardTransactionResponse(reversed))
    }

    @Sendable func refund(_ request: Request, context: VaultRequestContext) async throws -> Response {
        _ = try context.require(.network)
        let body = try await JSONRequest.decode(RefundBody.self, from: request, limit: Self.bodyLimit)
        return try JSONResponse.make(CardTransactionResponse(try await network.refund(body.request)))
    }
}

// MARK: Response bodies (snake_case, every field present, null when absent)

struct NetworkAuthorizationResponse: Encodable {
    var authorization: CardAuthorization
    init(_ authorization: CardAuthorization) { self.authorization = authorization }

    enum CodingKeys: String, CodingKey {
        case id, approved, amount, currency
        case networkReference = "network_reference"
        case declineCode = "decline_code"
        case limitWindow = "limit_window"
        case authCode = "auth_code"
        case createdAt = "created_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(authorization.id, forKey: .id)
        try container.encode(authorization.networkReference, forKey: .networkReference)
        try container.encode(authorization.approved, forKey: .approved)
        try container.encode(authorization.declineCode?.rawValue, forKey: .declineCode)
        try container.encode(authorization.limitWindow?.rawValue, forKey: .limitWindow)
        try container.encode(authorization.authCode, forKey: .authCode)
        try container.encode(authorization.amount, forKey: .amount)
        try container.encode(authorization.currency, forKey: .currency)
        try container.encode(Timestamp.string(authorization.createdAt), forKey: .createdAt)
    }
}

/// One entry of a card's history, on the network listener and in a card's transactions.
struct CardTransactionResponse: Encodable {
    var transaction: CardTransaction
    init(_ transaction: CardTransaction) { self.transaction = transaction }

    enum CodingKeys: String, CodingKey {
        case sequence, id, type, amount, currency, merchant, approved
        case virtualCardID = "virtual_card_id"
        case authorizationID = "authorization_id"
        case networkReference = "network_reference"
        case declineCode = "decline_code"
        case limitWindow = "limit_window"
        case createdAt = "created_at"
    }

    struct MerchantResponse: Encodable {
        var id: String
        var name: String
        var mcc: String
        var country: String
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(transaction.sequence, forKey: .sequence)
        try container.encode(transaction.id, forKey: .id)
        try container.encode(transaction.kind.rawValue, forKey: .type)
        try container.encode(transaction.cardID, forKey: .virtualCardID)
        try container.encode(transaction.authorizationID, forKey: .authorizationID)
        try container.encode(transaction.networkReference, forKey: .networkReference)
        try container.encode(transaction.amount, forKey: .amount)
        try container.encode(transaction.currency, forKey: .currency)
        try container.encode(
            transaction.merchant.map { MerchantResponse(id: $0.id, name: $0.name, mcc: $0.mcc, country: $0.country) },
            forKey: .merchant)
        try container.encode(transaction.approved, forKey: .approved)
        try container.encode(transaction.declineCode?.rawValue, forKey: .declineCode)
        try container.encode(transaction.limitWindow?.rawValue, forKey: .limitWindow)
        try container.encode(Timestamp.string(transaction.createdAt), forKey: .createdAt)
    }
}
