import CardTokens
import Foundation
import HTTPTypes
import Hummingbird
import Ledger
import TokenVault
import Wallet

/// `/v1/wallets` and `/v1/transfers` (scope `wallet`): wallets, cards on file, top-ups,
/// transfers and statements. Every POST requires an `Idempotency-Key` header, scoped to the
/// calling API key.
struct WalletController {
    let wallets: WalletService
    static let bodyLimit = 16 * 1024

    func addRoutes(to router: Router<VaultRequestContext>) {
        router.post("/v1/wallets", use: createWallet)
        router.get("/v1/wallets/:wallet", use: wallet)
        router.post("/v1/wallets/:wallet/cards", use: addCard)
        router.get("/v1/wallets/:wallet/cards", use: cards)
        router.post("/v1/wallets/:wallet/top_ups", use: topUp)
        router.get("/v1/wallets/:wallet/transactions", use: transactions)
        router.post("/v1/transfers", use: transfer)
    }

    // MARK: Request bodies

    struct CreateWalletBody: Decodable {
        var ownerRef: String
        var currency: String
        enum CodingKeys: String, CodingKey {
            case ownerRef = "owner_ref"
            case currency
        }
    }

    struct AddCardBody: Decodable {
        var token: String
    }

    struct TopUpBody: Decodable {
        var cardID: String
        var amount: Int64
        var currency: String
        enum CodingKeys: String, CodingKey {
            case cardID = "card_id"
            case amount, currency
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            cardID = try container.decode(String.self, forKey: .cardID)
            amount = try container.decodeInteger(Int64.self, forKey: .amount)
            currency = try container.decode(String.self, forKey: .currency)
        }
    }

    struct TransferBody: Decodable {
        var fromWallet: String
        var toWallet: String
        var amount: Int64
        var currency: String
        enum CodingKeys: String, CodingKey {
            case fromWallet = "from_wallet"
            case toWallet = "to_wallet"
            case amount, currency
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            fromWallet = try container.decode(String.self, forKey: .fromWallet)
            toWallet = try container.decode(String.self, forKey: .toWallet)
            amount = try container.decodeInteger(Int64.self, forKey: .amount)
            currency = try container.decode(String.self, forKey: .currency)
        }
    }

    // MARK: Handlers

    @Sendable func createWallet(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let key = try context.idempotencyKey(request)
        let body = try await JSONRequest.decode(CreateWalletBody.self, from: request, limit: Self.bodyLimit)
        let wallet = try await wallets.createWallet(
            ownerRef: body.ownerRef, currency: body.currency, idempotency: key, tenant: try tenant(context))
        return try JSONResponse.make(WalletResponse(wallet), status: .created)
    }

    @Sendable func wallet(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let tenant = try context.require(.wallet).tenant
        let wallet = try await wallets.wallet(try context.parameters.require("wallet"), tenant: tenant)
        return try JSONResponse.make(WalletResponse(wallet))
    }

    @Sendable func addCard(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let key = try context.idempotencyKey(request)
        let body = try await JSONRequest.decode(AddCardBody.self, from: request, limit: Self.bodyLimit)
        let token = try Token(validating: body.token)
        let saved = try await wallets.addCard(
            walletID: try context.parameters.require("wallet"), token: token, idempotency: key,
            tenant: try tenant(context))
        return try JSONResponse.make(CardResponse(saved.card), status: saved.created ? .created : .ok)
    }

    @Sendable func cards(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let tenant = try context.require(.wallet).tenant
        let cards = try await wallets.cards(of: try context.parameters.require("wallet"), tenant: tenant)
        return try JSONResponse.make(CardList(cards: cards.map(CardResponse.init)))
    }

    @Sendable func topUp(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let key = try context.idempotencyKey(request)
        let body = try await JSONRequest.decode(TopUpBody.self, from: request, limit: Self.bodyLimit)
        let topUp = try await wallets.topUp(
            walletID: try context.parameters.require("wallet"), cardID: body.cardID, amount: body.amount,
            currency: body.currency, idempotency: key, tenant: try tenant(context), origin: context.remoteAddress)
        return try JSONResponse.make(TopUpResponse(topUp), status: .created)
    }

    @Sendable func transfer(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let key = try context.idempotencyKey(request)
        let body = try await JSONRequest.decode(TransferBody.self, from: request, limit: Self.bodyLimit)
        let transfer = try await wallets.transfer(
            from: body.fromWallet, to: body.toWallet, amount: body.amount, currency: body.currency, idempotency: key,
            tenant: try tenant(context))
        return try JSONResponse.make(TransferResponse(transfer), status: .created)
    }

    @Sendable func transactions(_ request: Request, context: VaultRequestContext) async throws -> Response {
        let tenant = try context.require(.wallet).tenant
        let query = try PageQuery(request, after: "a next_after value")
        let page = try await wallets.transactions(
            of: try context.parameters.require("wallet"), after: query.after, limit: query.limit, tenant: tenant)
        return try JSONResponse.make(
            TransactionPage(transactions: page.entries.map(StatementEntryResponse.init), nextAfter: page.nextAfter))
    }

    /// The caller's tenant: it sees only its tenant's wallets and tokens.
    private func tenant(_ context: VaultRequestContext) throws -> String {
        try context.require(.wallet).tenant
    }
}

extension VaultRequestContext {
    /// The caller's `Idempotency-Key`, scoped to its API key; checks the `wallet` scope first.
    func idempotencyKey(_ request: Request) throws -> IdempotencyKey {
        let credential = try require(.wallet)
        guard let value = request.headers[.idempotencyKey] else {
            throw APIError(
                .badRequest, code: "idempotency_key_required",
                message: "POST requests to wallet routes need an Idempotency-Key header")
        }
        return try IdempotencyKey(owner: credential.id, key: value)
    }
}

extension HTTPField.Name {
    static let idempotencyKey = Self("Idempotency-Key")!
}

// MARK: Response bodies (snake_case, every field present, null when absent)

struct WalletResponse: Encodable {
    var wallet: WalletSummary
    init(_ wallet: WalletSummary) { self.wallet = wallet }

    enum CodingKeys: String, CodingKey {
        case id, currency, balances
        case ownerRef = "owner_ref"
        case accountNumber = "account_number"
        case createdAt = "created_at"
    }

    struct BalancesBody: Encodable {
        var posted: Int64
        var pending: Int64
        var available: Int64
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(wallet.id, forKey: .id)
        try container.encode(wallet.ownerRef, forKey: .ownerRef)
        try container.encode(wallet.currency, forKey: .currency)
        try container.encode(wallet.accountNumber.rawValue, forKey: .accountNumber)
        let balances = wallet.balances
        try container.encode(
            BalancesBody(posted: balances.posted, pending: balances.pending, available: balances.available),
            forKey: .balances)
        try container.encode(Timestamp.string(wallet.createdAt), forKey: .createdAt)
    }
}

struct CardResponse: Encodable {
    var id: String
    var walletID: String
    var token: String
    var bin: String
    var last4: String
    var brand: String
    var expMonth: Int
    var expYear: Int
    var fingerprint: String
    var createdAt: String

    enum CodingKeys: String, CodingKey {
        case id, token, bin, last4, brand, fingerprint
        case walletID = "wallet_id"
        case expMonth = "exp_month"
        case expYear = "exp_year"
        case createdAt = "created_at"
    }

    init(_ card: CardOnFile) {
        id = card.id
        walletID = card.walletID
        token = card.token.rawValue
        bin = card.bin
        last4 = card.last4
        brand = card.brand.rawValue
        expMonth = card.expMonth
        expYear = card.expYear
        fingerprint = card.fingerprint
        createdAt = Timestamp.string(card.createdAt)
    }
}

struct CardList: Encodable {
    var cards: [CardResponse]
}

struct TopUpResponse: Encodable {
    var topUp: TopUp
    init(_ topUp: TopUp) { self.topUp = topUp }

    enum CodingKeys: String, CodingKey {
        case id, amount, currency, status
        case walletID = "wallet_id"
        case cardID = "card_id"
        case authCode = "auth_code"
        case acquirerReference = "acquirer_reference"
        case declineCode = "decline_code"
        case createdAt = "created_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(topUp.id, forKey: .id)
        try container.encode(topUp.walletID, forKey: .walletID)
        try container.encode(topUp.cardID, forKey: .cardID)
        try container.encode(topUp.amount, forKey: .amount)
        try container.encode(topUp.currency, forKey: .currency)
        try container.encode(topUp.status.rawValue, forKey: .status)
        try container.encode(topUp.authCode, forKey: .authCode)
        try container.encode(topUp.acquirerReference, forKey: .acquirerReference)
        try container.encode(topUp.declineCode, forKey: .declineCode)
        try container.encode(Timestamp.string(topUp.createdAt), forKey: .createdAt)
    }
}

struct TransferResponse: Encodable {
    var id: String
    var fromWallet: String
    var toWallet: String
    var amount: Int64
    var currency: String
    var status = "posted"
    var createdAt: String

    enum CodingKeys: String, CodingKey {
        case id, amount, currency, status
        case fromWallet = "from_wallet"
        case toWallet = "to_wallet"
        case createdAt = "created_at"
    }

    init(_ transfer: WalletTransfer) {
        id = transfer.id
        fromWallet = transfer.fromWallet
        toWallet = transfer.toWallet
        amount = transfer.amount
        currency = transfer.currency
        createdAt = Timestamp.string(transfer.createdAt)
    }
}

struct StatementEntryResponse: Encodable {
    var entry: StatementEntry
    init(_ entry: StatementEntry) { self.entry = entry }

    enum CodingKeys: String, CodingKey {
        case id, type, amount, currency, sequence
        case counterpartyWallet = "counterparty_wallet"
        case createdAt = "created_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(entry.sequence, forKey: .sequence)
        try container.encode(entry.id, forKey: .id)
        try container.encode(entry.kind.rawValue, forKey: .type)
        try container.encode(entry.amount, forKey: .amount)
        try container.encode(entry.currency, forKey: .currency)
        try container.encode(entry.counterpartyWallet, forKey: .counterpartyWallet)
        try container.encode(Timestamp.string(entry.createdAt), forKey: .createdAt)
    }
}

/// A page of a history (a wallet's statement, a card's transactions), oldest first.
struct TransactionPage<Entry: Encodable>: Encodable {
    var transactions: [Entry]
    var nextAfter: Int64?

    enum CodingKeys: String, CodingKey {
        case transactions
        case nextAfter = "next_after"
    }

    /// `next_after` is always present: the cursor of the next page, or `null` on the last.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(transactions, forKey: .transactions)
        try container.encode(nextAfter, forKey: .nextAfter)
    }
}
