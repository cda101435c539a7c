import CardTokens
import Foundation
import Hummingbird
import Issuing
import TokenVault
import Wallet

/// `/v1/wallets/{wallet}/virtual_cards` and `/v1/virtual_cards/{id}` (scope `wallet`): cards the
/// vault issues, kept by token with their state and controls. No response holds a PAN or CVV.
/// Every POST and PATCH requires an `Idempotency-Key`.
struct VirtualCardController {
    let cards: VirtualCardService
    let network: CardNetworkService

    func addRoutes(to router: Router<VaultRequestContext>) {
        router.post("/v1/wallets/:wallet/virtual_cards", use: issue)
        router.get("/v1/wallets/:wallet/virtual_cards", use: list)
        router.get("/v1/virtual_cards/:virtual_card", use: card)
        router.patch("/v1/virtual_cards/:virtual_card", use: change)
        router.post("/v1/virtual_cards/:virtual_card/activate", use: activate)
        router.get("/v1/virtual_cards/:virtual_card/transactions", use: transactions)
    }

    // MARK: Request bodies

    struct LimitsBody: Decodable {
        var limits: SpendLimits

        enum CodingKeys: String, CodingKey {
            case perTransaction = "per_transaction"
            case daily, monthly, lifetime
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            func limit(_ key: CodingKeys) throws -> Int64? {
                try container.contains(key) && !container.decodeNil(forKey: key)
                    ? container.decodeInteger(Int64.self, forKey: key) : nil
            }
            limits = SpendLimits(
                perTransaction: try limit(.perTransaction), daily: try limit(.daily), monthly: try limit(.monthly),
                lifetime: try limit(.lifetime))
        }
    }

    enum ControlKeys: String, CodingKey {
        case type, activate, state
        case spendLimits = "spend_limits"
        case allowedMCCs = "allowed_mccs"
        case blockedMCCs = "blocked_mccs"
        case allowedCountries = "allowed_countries"
        case expiresInMonths = "expires_in_months"
    }

    struct IssueBody: Decodable {
        var request: NewVirtualCard

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: ControlKeys.self)
            request = NewVirtualCard(
                kind: try container.decode(VirtualCard.Kind.self, forKey: .type),
                controls: SpendControls(
                    limits: try container.decodeIfPresentNotNull(LimitsBody.self, forKey: .spendLimits)?.limits
                        ?? .init(),
                    allowedMCCs: try container.decodeIfPresentNotNull([String].self, forKey: .allowedMCCs) ?? [],
                    blockedMCCs: try container.decodeIfPresentNotNull([String].self, forKey: .blockedMCCs) ?? [],
                    allowedCountries: try container.decodeIfPresentNotNull([String].self, forKey: .allowedCountries)
                        ?? []),
                expiresInMonths: container.contains(.expiresInMonths)
                    ? try container.decodeInteger(Int.self, forKey: .expiresInMonths)
                    : IssueCardRequest.defaultExpiresInMonths,
                activate: try container.decodeIfPresentNotNull(Bool.self, forKey: .activate) ?? false)
        }
    }

    struct ChangeBody: Decodable {
        var change: VirtualCardChange

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: ControlKeys.self)
            change = VirtualCardChange(
                state: try container.decodeIfPresentNotNull(VirtualCard.State.self, forKey: .state),
                limits: try container.decodeIfPresentNotNull(LimitsBody.self, forKey: .spendLimits)?.limits,
                allowedMCCs: try container.decodeIfPresentNotNull([String].self, forKey: .allowedMCCs),
                blockedMCCs: try container.decodeIfPresentNotNull([String].self, forKey: .blockedMCCs),
                allowedCountries: try container.decodeIfPresentNotNull([String].self, forKey: .allowedCountries))
        }
    }

    // MARK: Handlers

    @Sendable func issue(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let key = try context.idempotencyKey(request)
        let body = try await JSONRequest.decode(IssueBody.self, from: request, limit: WalletController.bodyLimit)
        let card = try await cards.issue(
            to: try context.parameters.require("wallet"), body.request, idempotency: key,
            tenant: try context.require(.wallet).tenant, origin: context.remoteAddress)
        return try JSONResponse.make(VirtualCardResponse(card, now: Date()), status: .created)
    }

    @Sendable func list(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let tenant = try context.require(.wallet).tenant
        let list = try await cards.cards(of: try context.parameters.require("wallet"), tenant: tenant)
        let now = Date()
        return try JSONResponse.make(VirtualCardList(virtualCards: list.map { VirtualCardResponse($0, now: now) }))
    }

    @Sendable func card(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let tenant = try context.require(.wallet).tenant
        let card = try await cards.card(try context.parameters.require("virtual_card"), tenant: tenant)
        return try JSONResponse.make(VirtualCardResponse(card, now: Date()))
    }

    @Sendable func change(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let key = try context.idempotencyKey(request)
        let body = try await JSONRequest.decode(ChangeBody.self, from: request, limit: WalletController.bodyLimit)
        let card = try await cards.change(
            try context.parameters.require("virtual_card"), body.change, idempotency: key,
            tenant: try context.require(.wallet).tenant)
        return try JSONResponse.make(VirtualCardResponse(card, now: Date()))
    }

    /// The card's history, oldest first: authorizations (approved and declined), clearings,
    /// reversals, refunds and expiries, in cursor pages.
    @Sendable func transactions(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let tenant = try context.require(.wallet).tenant
        let card = try await cards.card(try context.parameters.require("virtual_card"), tenant: tenant)
        let query = try PageQuery(request, after: "a next_after value")
        let page = try await network.transactions(of: card.id, after: query.after, limit: query.limit + 1)
        let more = page.count > query.limit
        let entries = Array(page.prefix(query.limit))
        return try JSONResponse.make(
            TransactionPage(
                transactions: entries.map(CardTransactionResponse.init),
                nextAfter: more ? entries.last?.sequence : nil))
    }

    @Sendable func activate(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let key = try context.idempotencyKey(request)
        let card = try await cards.activate(
            try context.parameters.require("virtual_card"), idempotency: key,
            tenant: try context.require(.wallet).tenant)
        return try JSONResponse.make(VirtualCardResponse(card, now: Date()))
    }
}

// MARK: Response bodies (snake_case, every field present, null when absent)

struct VirtualCardResponse: Encodable {
    var card: VirtualCard
    var now: Date

    init(_ card: VirtualCard, now: Date) {
        self.card = card
        self.now = now
    }

    enum CodingKeys: String, CodingKey {
        case id, token, bin, last4, brand, type, state, expired, spent
        case walletID = "wallet_id"
        case expMonth = "exp_month"
        case expYear = "exp_year"
        case spendLimits = "spend_limits"
        case allowedMCCs = "allowed_mccs"
        case blockedMCCs = "blocked_mccs"
        case allowedCountries = "allowed_countries"
        case lockedMerchant = "locked_merchant"
        case failedVerifications = "failed_verifications"
        case createdAt = "created_at"
    }

    struct Limits: Encodable {
        var limits: SpendLimits
        enum CodingKeys: String, CodingKey {
            case perTransaction = "per_transaction"
            case daily, monthly, lifetime
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(limits.perTransaction, forKey: .perTransaction)
            try container.encode(limits.daily, forKey: .daily)
            try container.encode(limits.monthly, forKey: .monthly)
            try container.encode(limits.lifetime, forKey: .lifetime)
        }
    }

    struct Spent: Encodable {
        var daily: Int64
        var monthly: Int64
        var lifetime: Int64
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(card.id, forKey: .id)
        try container.encode(card.walletID, forKey: .walletID)
        try container.encode(card.token.rawValue, forKey: .token)
        try container.encode(card.bin, forKey: .bin)
        try container.encode(card.last4, forKey: .last4)
        try container.encode(card.brand.rawValue, forKey: .brand)
        try container.encode(card.expMonth, forKey: .expMonth)
        try container.encode(card.expYear, forKey: .expYear)
        try container.encode(card.kind.rawValue, forKey: .type)
        try container.encode(card.state.rawValue, forKey: .state)
        try container.encode(card.isExpired(at: now), forKey: .expired)
        try container.encode(Limits(limits: card.controls.limits), forKey: .spendLimits)
        let spent = card.spent.current(at: now)
        try container.encode(
            Spent(daily: spent.daily, monthly: spent.monthly, lifetime: spent.lifetime), forKey: .spent)
        try container.encode(card.controls.allowedMCCs, forKey: .allowedMCCs)
        try container.encode(card.controls.blockedMCCs, forKey: .blockedMCCs)
        try container.encode(card.controls.allowedCountries, forKey: .allowedCountries)
        try container.encode(card.lockedMerchant, forKey: .lockedMerchant)
        try container.encode(card.failedVerifications, forKey: .failedVerifications)
        try container.encode(Timestamp.string(card.createdAt), forKey: .createdAt)
    }
}

struct VirtualCardList: Encodable {
    var virtualCards: [VirtualCardResponse]
    enum CodingKeys: String, CodingKey {
        case virtualCards = "virtual_cards"
    }
}
