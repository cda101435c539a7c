import CardTokens
import Foundation
import HTTPTypes
import NIOCore
import Synchronization
import Testing
import TokenVault
import VaultTestSupport

// Helpers for the wallet routes: requests with an Idempotency-Key under the wallet key, the
// response bodies, and a scripted authorizer in place of the acquirer.

/// A well-formed wallet id that no wallet has.
let unknownWallet = "wal_aaaaaaaaaaaaaaaaaaaaaaaaaa"

extension TestServer {
    /// The wallet key (scopes `wallet` and `tokenize`); the server must have a wallet side.
    var walletAuth: Auth {
        guard let walletKey else { preconditionFailure("start the server with withServer(wallets:)") }
        return .bearer(walletKey)
    }

    /// `POST uri` with a raw body and, unless `idempotencyKey` is `nil`, an `Idempotency-Key`
    /// (a fresh one unless given).
    func walletPost(
        _ uri: String, text: String, idempotencyKey: String? = UUID().uuidString, auth: Auth? = nil
    ) async throws -> Reply {
        var headers: HTTPFields = [:]
        if let idempotencyKey { headers[.idempotencyKey] = idempotencyKey }
        return try await send(.post, uri, auth: auth ?? walletAuth, body: ByteBuffer(string: text), headers: headers)
    }

    /// `POST uri` with a body built from a JSON-compatible value and, unless `idempotencyKey` is
    /// `nil`, an `Idempotency-Key` (a fresh one unless given).
    func walletPost(
        _ uri: String, json: Any, idempotencyKey: String? = UUID().uuidString, auth: Auth? = nil
    ) async throws -> Reply {
        try await walletPost(
            uri, text: String(decoding: try JSONCoding.data(json), as: UTF8.self), idempotencyKey: idempotencyKey,
            auth: auth)
    }

    /// `GET uri` with the wallet key.
    func walletGet(_ uri: String) async throws -> Reply {
        try await send(.get, uri, auth: walletAuth)
    }

    /// `POST /v1/tokens` with the wallet key, which must succeed.
    func walletTokenized(_ card: TestCard) async throws -> TokenReply {
        let reply = try await tokenize(card, auth: walletAuth)
        try #require(reply.status == .created || reply.status == .ok, "\(reply)")
        return try reply.decode(TokenReply.self)
    }

    /// `POST /v1/wallets`, which must succeed.
    func createWallet(currency: String = "EUR", ownerRef: String = "owner-1") async throws -> WalletReply {
        let reply = try await walletPost("/v1/wallets", json: ["owner_ref": ownerRef, "currency": currency])
        try #require(reply.status == .created, "\(reply)")
        return try reply.decode(WalletReply.self)
    }

    /// `GET /v1/wallets/{id}`, which must succeed.
    func wallet(_ id: String) async throws -> WalletReply {
        let reply = try await walletGet("/v1/wallets/\(id)")
        try #require(reply.status == .ok, "\(reply)")
        return try reply.decode(WalletReply.self)
    }

    /// Tokenizes `card` and saves it to `wallet`, which must succeed.
    func addCard(_ card: TestCard, to wallet: String) async throws -> CardReply {
        let token = try await walletTokenized(card).token
        let reply = try await walletPost("/v1/wallets/\(wallet)/cards", json: ["token": token])
        try #require(reply.status == .created || reply.status == .ok, "\(reply)")
        return try reply.decode(CardReply.self)
    }

    /// `POST /v1/wallets/{wallet}/top_ups`.
    func topUp(
        _ wallet: String, card: String, amount: Int64, currency: String = "EUR",
        idempotencyKey: String? = UUID().uuidString
    ) async throws -> Reply {
        try await walletPost(
            "/v1/wallets/\(wallet)/top_ups", json: ["card_id": card, "amount": amount, "currency": currency],
            idempotencyKey: idempotencyKey)
    }

    /// `POST /v1/transfers`.
    func transfer(
        from source: String, to destination: String, amount: Int64, currency: String = "EUR",
        idempotencyKey: String? = UUID().uuidString, auth: Auth? = nil
    ) async throws -> Reply {
        try await walletPost(
            "/v1/transfers",
            json: ["from_wallet": source, "to_wallet": destination, "amount": amount, "currency": currency],
            idempotencyKey: idempotencyKey, auth: auth)
    }

    /// Every statement entry of `wallet`, read in pages of `limit`.
    func statement(_ wallet: String, limit: Int = 1000) async throws -> [StatementEntryReply] {
        var entries = [StatementEntryReply]()
        var after: Int64? = 0
        while let cursor = after {
            let reply = try await walletGet("/v1/wallets/\(wallet)/transactions?after=\(cursor)&limit=\(limit)")
            try #require(reply.status == .ok, "\(reply)")
            let page = try reply.decode(StatementPageReply.self)
            entries += page.transactions
            after = page.nextAfter
        }
        return entries
    }

    /// The bytes of `wallet.db` and of its write-ahead log, if present.
    func walletDatabaseBytes() throws -> [UInt8] {
        let base = vault.paths.dataDirectory + "/wallet.db"
        var bytes = [UInt8]()
        for path in [base, base + "-wal"] {
            if let data = FileManager.default.contents(atPath: path) { bytes += data }
        }
        return bytes
    }
}

extension HTTPField.Name {
    static let idempotencyKey = Self("Idempotency-Key")!
}

// MARK: - Response bodies

struct WalletReply: Decodable, Sendable, Hashable {
    struct Balances: Decodable, Sendable, Hashable {
        var posted: Int64
        var pending: Int64
        var available: Int64
    }
    var id: String
    var ownerRef: String
    var currency: String
    var accountNumber: String
    var balances: Balances
    var createdAt: Date
}

struct CardReply: Decodable, Sendable, Hashable {
    var id: String
    var walletId: String
    var token: String
    var bin: String
    var last4: String
    var brand: String
    var expMonth: Int
    var expYear: Int
    var fingerprint: String
    var createdAt: Date
}

struct CardListReply: Decodable, Sendable {
    var cards: [CardReply]
}

struct TopUpReply: Decodable, Sendable, Hashable {
    var id: String
    var walletId: String
    var cardId: String
    var amount: Int64
    var currency: String
    var status: String
    var authCode: String?
    var acquirerReference: String?
    var declineCode: String?
    var createdAt: Date
}

struct TransferReply: Decodable, Sendable, Hashable {
    var id: String
    var fromWallet: String
    var toWallet: String
    var amount: Int64
    var currency: String
    var status: String
    var createdAt: Date
}

struct StatementEntryReply: Decodable, Sendable, Hashable {
    var sequence: Int64
    var id: String
    var type: String
    var amount: Int64
    var currency: String
    var counterpartyWallet: String?
    var createdAt: Date
}

struct StatementPageReply: Decodable, Sendable {
    var transactions: [StatementEntryReply]
    var nextAfter: Int64?
}

// MARK: - A scripted acquirer

/// Stands in for the authorization gateway: answers each request with the next scripted step
/// (approve when the script is empty) and records every request it saw. Once told how
/// (``checkTokens(_:)``), it refuses a token the vault no longer holds, as the gateway does.
final class FakeAuthorizer: CardAuthorizing {
    enum Step: Sendable {
        case approve
        case decline(String)
        case fail(AuthorizationError.Code)
    }

    private struct State {
        var steps: [Step] = []
        var requests: [AuthorizationRequest] = []
        var tokenExists: (@Sendable (Token) async -> Bool)?
    }

    private let state = Mutex(State())

    /// Appends `steps` to the script.
    func script(_ steps: Step...) {
        state.withLock { $0.steps += steps }
    }

    /// From now on, a token for which `exists` is false gets `token_not_found`.
    func checkTokens(_ exists: @escaping @Sendable (Token) async -> Bool) {
        state.withLock { $0.tokenExists = exists }
    }

    /// Every request seen, in order.
    var requests: [AuthorizationRequest] { state.withLock { $0.requests } }

    /// This acquirer keeps no record to be asked about: every reference is one it never received.
    /// (The HTTP suites never let a top-up's outcome stay unknown long enough to be asked.)
    func outcome(ofReference reference: String) async throws(AuthorizationError) -> AuthorizationOutcome? { nil }

    func authorize(_ request: AuthorizationRequest) async throws(AuthorizationError) -> AuthorizationOutcome {
        let tokenExists = state.withLock { state in
            state.requests.append(request)
            return state.tokenExists
        }
        if let tokenExists, await !tokenExists(request.token) {
            throw AuthorizationError(.tokenNotFound, "no such token")
        }
        let step = state.withLock { state -> Step in
            state.steps.isEmpty ? .approve : state.steps.removeFirst()
        }
        switch step {
        case .approve:
            return AuthorizationOutcome(
                decision: .approved, authCode: "A1B2C3", acquirerReference: "acq-" + request.reference,
                declineCode: nil)
        case .decline(let code):
            return AuthorizationOutcome(
                decision: .declined, authCode: nil, acquirerReference: "acq-" + request.reference, declineCode: code)
        case .fail(let code):
            throw AuthorizationError(code, "scripted failure")
        }
    }
}
