import CardTokens
import Foundation
import HTTPTypes
import NIOCore
import Testing
import TokenVault
import VaultTestSupport

/// The wallet routes over HTTP (router transport): authentication and scope, Idempotency-Key
/// rules, every refusal with its status and code, top-ups through a scripted acquirer,
/// statements, and no card data in `wallet.db`.
@Suite("Wallet routes", .timeLimit(.minutes(10)))
struct WalletRouteTests {
    /// Every wallet route, with `{wallet}` filled in by the test.
    static func routes(wallet: String) -> [(method: HTTPRequest.Method, uri: String)] {
        [
            (.post, "/v1/wallets"), (.get, "/v1/wallets/\(wallet)"), (.post, "/v1/wallets/\(wallet)/cards"),
            (.get, "/v1/wallets/\(wallet)/cards"), (.post, "/v1/wallets/\(wallet)/top_ups"),
            (.get, "/v1/wallets/\(wallet)/transactions"), (.post, "/v1/transfers"),
        ]
    }

    /// A funded wallet with a card on file and a second, empty wallet, both in EUR.
    struct Fixture {
        var wallet: WalletReply
        var card: CardReply
        var other: WalletReply
    }

    static func fixture(_ server: TestServer, funds: Int64 = 10_000) async throws -> Fixture {
        let wallet = try await server.createWallet()
        let card = try await server.addCard(.visa, to: wallet.id)
        if funds > 0 {
            let reply = try await server.topUp(wallet.id, card: card.id, amount: funds)
            try #require(reply.status == .created, "\(reply)")
            try #require(try reply.decode(TopUpReply.self).status == "approved")
        }
        return Fixture(wallet: wallet, card: card, other: try await server.createWallet())
    }

    /// `reply` is the error `code` with `status`, and its message echoes none of `secrets`.
    static func expectError(
        _ reply: Reply, _ status: HTTPResponse.Status, _ code: String, secrets: [String] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(reply.status == status, "\(reply)", sourceLocation: sourceLocation)
        #expect(reply.errorCode == code, "\(reply)", sourceLocation: sourceLocation)
        for secret in secrets {
            #expect(!reply.contains(secret), "the error echoes request data", sourceLocation: sourceLocation)
        }
    }

    // MARK: Authentication

    @Test("No key is 401 with a Bearer challenge; a key without scope wallet is 403, before any other check")
    func authentication() async throws {
        try await withServer(wallets: WalletSetup(authorizer: FakeAuthorizer())) { server in
            let wallet = try await server.createWallet()
            let withoutWallet = try await server.key(scopes: Scope.all.filter { $0 != .wallet && $0 != .network })
                .secret
            let walletOnly = try await server.key(scopes: [.wallet]).secret
            let body = #"{"owner_ref":"x","currency":"EUR"}"#
            for route in Self.routes(wallet: wallet.id) {
                let post = route.method == .post
                for auth in [Auth.none, .bearer("vk_nope_nope"), .header("Basic Zm9vOmJhcg==")] {
                    let reply = try await server.send(
                        route.method, route.uri, auth: auth, body: post ? ByteBuffer(string: body) : nil)
                    Self.expectError(reply, .unauthorized, "unauthenticated")
                    #expect(reply.headers[.wwwAuthenticate] == "Bearer", "\(route.uri)")
                }
                // Neither the Idempotency-Key check nor the body comes before the scope.
                for auth in [Auth.standard, .bearer(withoutWallet)] {
                    let reply = try await server.send(
                        route.method, route.uri, auth: auth, body: post ? ByteBuffer(string: "{") : nil)
                    Self.expectError(reply, .forbidden, "forbidden")
                }
                // The scope `wallet` alone is enough.
                let allowed =
                    post
                    ? try await server.walletPost(route.uri, text: "{", auth: .bearer(walletOnly))
                    : try await server.send(route.method, route.uri, auth: .bearer(walletOnly))
                #expect(allowed.status == (post ? .badRequest : .ok), "\(route.uri): \(allowed)")
            }
            // Nothing was created by the refused requests: account numbers are handed out in
            // sequence, and the next one is only the second.
            #expect(try await server.wallet(wallet.id).balances.posted == 0)
            #expect(try await server.statement(wallet.id).isEmpty)
            #expect(wallet.accountNumber.hasSuffix("0000000001"), "\(wallet.accountNumber)")
            #expect(try await server.createWallet().accountNumber.hasSuffix("0000000002"))
        }
    }

    // MARK: Idempotency-Key

    @Test("Every POST without an Idempotency-Key, or with an invalid one, is a 400 and changes nothing")
    func idempotencyKeyRequired() async throws {
        try await withServer(wallets: WalletSetup(authorizer: FakeAuthorizer())) { server in
            let fixture = try await Self.fixture(server)
            let token = try await server.walletTokenized(.mastercard).token
            let posts: [(uri: String, json: [String: Any])] = [
                ("/v1/wallets", ["owner_ref": "bob", "currency": "EUR"]),
                ("/v1/wallets/\(fixture.wallet.id)/cards", ["token": token]),
                (
                    "/v1/wallets/\(fixture.wallet.id)/top_ups",
                    ["card_id": fixture.card.id, "amount": 100, "currency": "EUR"]
                ),
                (
                    "/v1/transfers",
                    ["from_wallet": fixture.wallet.id, "to_wallet": fixture.other.id, "amount": 100, "currency": "EUR"]
                ),
            ]
            let tooLong = String(repeating: "k", count: 256)
            for post in posts {
                Self.expectError(
                    try await server.walletPost(post.uri, json: post.json, idempotencyKey: nil), .badRequest,
                    "idempotency_key_required")
                for key in [tooLong, "", "4111 1111 1111 1111"] {
                    Self.expectError(
                        try await server.walletPost(post.uri, json: post.json, idempotencyKey: key), .badRequest,
                        "invalid_idempotency_key", secrets: ["4111 1111 1111 1111"])
                }
                // Without a key even a malformed body is refused for the key first.
                Self.expectError(
                    try await server.walletPost(post.uri, text: "{", idempotencyKey: nil), .badRequest,
                    "idempotency_key_required")
            }
            let fresh = try await server.statement(fixture.wallet.id)
            #expect(fresh.count == 1, "only the fixture's top-up")
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == 10_000)
            let cards = try (try await server.walletGet("/v1/wallets/\(fixture.wallet.id)/cards"))
                .decode(CardListReply.self).cards
            #expect(cards.map(\.id) == [fixture.card.id])
            // 255 printable characters are a valid key.
            let longest = String(repeating: "k", count: 255)
            let reply = try await server.walletPost(posts[0].uri, json: posts[0].json, idempotencyKey: longest)
            #expect(reply.status == .created, "\(reply)")
            let third = try reply.decode(WalletReply.self).accountNumber
            #expect(third.hasSuffix("0000000003"), "no refused request created a wallet: \(third)")
        }
    }

    @Test("A retry with the same key and body replays the first response byte for byte, on every POST")
    func replay() async throws {
        let authorizer = FakeAuthorizer()
        try await withServer(wallets: WalletSetup(authorizer: authorizer)) { server in
            let fixture = try await Self.fixture(server)
            let token = try await server.walletTokenized(.mastercard).token
            let before = authorizer.requests.count
            let posts: [(uri: String, json: [String: Any], status: HTTPResponse.Status)] = [
                ("/v1/wallets", ["owner_ref": "bob", "currency": "EUR"], .created),
                ("/v1/wallets/\(fixture.wallet.id)/cards", ["token": token], .created),
                // The same card again: the existing entry, 200, replayed as 200.
                ("/v1/wallets/\(fixture.wallet.id)/cards", ["token": fixture.card.token], .ok),
                (
                    "/v1/wallets/\(fixture.wallet.id)/top_ups",
                    ["card_id": fixture.card.id, "amount": 700, "currency": "EUR"], .created
                ),
                (
                    "/v1/transfers",
                    [
                        "from_wallet": fixture.wallet.id, "to_wallet": fixture.other.id, "amount": 300,
                        "currency": "EUR",
                    ],
                    .created
                ),
                // A refusal that ran (the ledger refused it) is replayed too.
                (
                    "/v1/transfers",
                    [
                        "from_wallet": fixture.other.id, "to_wallet": fixture.wallet.id, "amount": 1_000_000,
                        "currency": "EUR",
                    ], .unprocessableContent
                ),
            ]
            for post in posts {
                let key = UUID().uuidString
                let first = try await server.walletPost(post.uri, json: post.json, idempotencyKey: key)
                #expect(first.status == post.status, "\(post.uri): \(first)")
                for _ in 0..<2 {
                    let again = try await server.walletPost(post.uri, json: post.json, idempotencyKey: key)
                    #expect(again.status == first.status, "\(post.uri): \(again)")
                    #expect(again.body == first.body, "\(post.uri): \(again.text) != \(first.text)")
                }
            }
            #expect(authorizer.requests.count == before + 1, "the replayed top-up reached the acquirer once")
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == 10_000 + 700 - 300)
            #expect(try await server.wallet(fixture.other.id).balances.posted == 300)
            let statement = try await server.statement(fixture.wallet.id)
            #expect(statement.map(\.type) == ["top_up", "top_up", "transfer_out"])
            // A replay of the create-wallet request still shows the first response's balances.
            let key = UUID().uuidString
            let created = try await server.walletPost(
                "/v1/wallets", json: ["owner_ref": "carol", "currency": "EUR"], idempotencyKey: key)
            let wallet = try created.decode(WalletReply.self)
            let card = try await server.addCard(.visa2, to: wallet.id)
            #expect(try await server.topUp(wallet.id, card: card.id, amount: 50).status == .created)
            let replayed = try await server.walletPost(
                "/v1/wallets", json: ["owner_ref": "carol", "currency": "EUR"], idempotencyKey: key)
            #expect(replayed.body == created.body)
            #expect(try await server.wallet(wallet.id).balances.posted == 50)
        }
    }

    @Test("The same key with another body is 422 idempotency_key_reused, on every POST")
    func keyReused() async throws {
        let authorizer = FakeAuthorizer()
        try await withServer(wallets: WalletSetup(authorizer: authorizer)) { server in
            let fixture = try await Self.fixture(server)
            let tokens = [
                try await server.walletTokenized(.mastercard).token, try await server.walletTokenized(.amex).token,
            ]
            let wallet = fixture.wallet.id
            let pairs: [(uri: String, first: [String: Any], second: [String: Any])] = [
                ("/v1/wallets", ["owner_ref": "bob", "currency": "EUR"], ["owner_ref": "bob", "currency": "USD"]),
                ("/v1/wallets/\(wallet)/cards", ["token": tokens[0]], ["token": tokens[1]]),
                (
                    "/v1/wallets/\(wallet)/top_ups", ["card_id": fixture.card.id, "amount": 100, "currency": "EUR"],
                    ["card_id": fixture.card.id, "amount": 101, "currency": "EUR"]
                ),
                (
                    "/v1/transfers",
                    ["from_wallet": wallet, "to_wallet": fixture.other.id, "amount": 100, "currency": "EUR"],
                    ["from_wallet": wallet, "to_wallet": fixture.other.id, "amount": 200, "currency": "EUR"]
                ),
            ]
            for pair in pairs {
                let key = UUID().uuidString
                let first = try await server.walletPost(pair.uri, json: pair.first, idempotencyKey: key)
                #expect(first.status == .created, "\(pair.uri): \(first)")
                Self.expectError(
                    try await server.walletPost(pair.uri, json: pair.second, idempotencyKey: key),
                    .unprocessableContent, "idempotency_key_reused")
                // The same key on another route is another request too.
                if pair.uri != "/v1/wallets" {
                    Self.expectError(
                        try await server.walletPost(
                            "/v1/wallets", json: ["owner_ref": "bob", "currency": "EUR"], idempotencyKey: key),
                        .unprocessableContent, "idempotency_key_reused")
                }
                // The first request still replays.
                let again = try await server.walletPost(pair.uri, json: pair.first, idempotencyKey: key)
                #expect(again.body == first.body)
            }
            #expect(try await server.wallet(wallet).balances.posted == 10_000 + 100 - 100)
            #expect(authorizer.requests.count == 2, "the fixture's top-up and the first one here")
        }
    }

    @Test("20 concurrent transfers with one key book one transfer; the others replay it or get 409")
    func concurrentDuplicates() async throws {
        try await withServer(wallets: WalletSetup(authorizer: FakeAuthorizer())) { server in
            let fixture = try await Self.fixture(server)
            let key = UUID().uuidString
            let replies = try await withThrowingTaskGroup(of: Reply.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        try await server.transfer(
                            from: fixture.wallet.id, to: fixture.other.id, amount: 250, idempotencyKey: key)
                    }
                }
                return try await group.reduce(into: [Reply]()) { $0.append($1) }
            }
            let created = replies.filter { $0.status == .created }
            try #require(!created.isEmpty, "\(replies)")
            let transfer = try created[0].decode(TransferReply.self)
            for reply in replies {
                if reply.status == .created {
                    #expect(reply.body == created[0].body, "a replay is identical")
                } else {
                    Self.expectError(reply, .conflict, "idempotency_key_in_use")
                    #expect(reply.headers[.retryAfter] == "1")
                }
            }
            let outgoing = try await server.statement(fixture.wallet.id).filter { $0.type == "transfer_out" }
            #expect(outgoing.map(\.id) == [transfer.id])
            #expect(try await server.statement(fixture.other.id).map(\.id) == [transfer.id])
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == 10_000 - 250)
            #expect(try await server.wallet(fixture.other.id).balances.posted == 250)
            // Once settled, the key replays.
            let late = try await server.transfer(
                from: fixture.wallet.id, to: fixture.other.id, amount: 250, idempotencyKey: key)
            #expect(late.status == .created)
            #expect(late.body == created[0].body)
        }
    }

    @Test("Idempotency keys belong to the API key: two keys may use the same value, and each creates")
    func keysPerAPIKey() async throws {
        try await withServer(wallets: WalletSetup(authorizer: FakeAuthorizer())) { server in
            let fixture = try await Self.fixture(server)
            let second = Auth.bearer(try await server.key(scopes: [.wallet], name: "second").secret)
            let body: [String: Any] = ["owner_ref": "same", "currency": "EUR"]
            let one = try await server.walletPost("/v1/wallets", json: body, idempotencyKey: "shared")
            let two = try await server.walletPost("/v1/wallets", json: body, idempotencyKey: "shared", auth: second)
            #expect(one.status == .created, "\(one)")
            #expect(two.status == .created, "\(two)")
            #expect(try one.decode(WalletReply.self).id != two.decode(WalletReply.self).id)
            let first = try await server.transfer(
                from: fixture.wallet.id, to: fixture.other.id, amount: 10, idempotencyKey: "move")
            let other = try await server.transfer(
                from: fixture.wallet.id, to: fixture.other.id, amount: 10, idempotencyKey: "move", auth: second)
            #expect(first.status == .created && other.status == .created, "\(first) \(other)")
            #expect(try first.decode(TransferReply.self).id != other.decode(TransferReply.self).id)
            #expect(try await server.wallet(fixture.other.id).balances.posted == 20)
            // Another key's Idempotency-Key is not reused by a different body of this key.
            let different = try await server.transfer(
                from: fixture.wallet.id, to: fixture.other.id, amount: 11, idempotencyKey: "move", auth: second)
            Self.expectError(different, .unprocessableContent, "idempotency_key_reused")
        }
    }

    // MARK: Refusals

    @Test("Unknown wallets and cards are 404 wallet_not_found and card_not_found on every route")
    func notFound() async throws {
        try await withServer(wallets: WalletSetup(authorizer: FakeAuthorizer())) { server in
            let fixture = try await Self.fixture(server)
            let token = try await server.walletTokenized(.mastercard).token
            for uri in ["/v1/wallets/\(unknownWallet)", "/v1/wallets/\(unknownWallet)/cards"] {
                Self.expectError(try await server.walletGet(uri), .notFound, "wallet_not_found")
            }
            Self.expectError(
                try await server.walletGet("/v1/wallets/\(unknownWallet)/transactions?limit=5"), .notFound,
                "wallet_not_found")
            Self.expectError(
                try await server.walletPost("/v1/wallets/\(unknownWallet)/cards", json: ["token": token]), .notFound,
                "wallet_not_found")
            Self.expectError(
                try await server.topUp(unknownWallet, card: fixture.card.id, amount: 100), .notFound, "wallet_not_found"
            )
            Self.expectError(
                try await server.transfer(from: unknownWallet, to: fixture.other.id, amount: 1), .notFound,
                "wallet_not_found")
            Self.expectError(
                try await server.transfer(from: fixture.wallet.id, to: unknownWallet, amount: 1), .notFound,
                "wallet_not_found")
            Self.expectError(
                try await server.topUp(fixture.wallet.id, card: "card_nope", amount: 100), .notFound, "card_not_found")
            // A card of another wallet is not this wallet's card.
            Self.expectError(
                try await server.topUp(fixture.other.id, card: fixture.card.id, amount: 100), .notFound,
                "card_not_found")
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == 10_000)
        }
    }

    @Test("Currencies: unsupported is 422 unsupported_currency, another wallet's is 422 currency_mismatch")
    func currencies() async throws {
        try await withServer(wallets: WalletSetup(authorizer: FakeAuthorizer())) { server in
            let fixture = try await Self.fixture(server)
            let dollars = try await server.createWallet(currency: "USD")
            #expect(dollars.currency == "USD")
            for code in ["XXX", "eur", "EURO", ""] {
                Self.expectError(
                    try await server.walletPost("/v1/wallets", json: ["owner_ref": "x", "currency": code]),
                    .unprocessableContent, "unsupported_currency")
                Self.expectError(
                    try await server.topUp(fixture.wallet.id, card: fixture.card.id, amount: 1, currency: code),
                    .unprocessableContent, "unsupported_currency")
                Self.expectError(
                    try await server.transfer(from: fixture.wallet.id, to: fixture.other.id, amount: 1, currency: code),
                    .unprocessableContent, "unsupported_currency")
            }
            Self.expectError(
                try await server.topUp(fixture.wallet.id, card: fixture.card.id, amount: 100, currency: "USD"),
                .unprocessableContent, "currency_mismatch")
            for (from, to) in [(fixture.wallet.id, dollars.id), (dollars.id, fixture.wallet.id)] {
                for currency in ["EUR", "USD"] {
                    Self.expectError(
                        try await server.transfer(from: from, to: to, amount: 1, currency: currency),
                        .unprocessableContent, "currency_mismatch")
                }
            }
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == 10_000)
            #expect(try await server.wallet(dollars.id).balances.posted == 0)
        }
    }

    @Test("Amounts: 0 and -5 are 422 invalid_amount; 1.5, \"10\", 1e30 and 2^63 are 400 invalid_field")
    func amounts() async throws {
        let authorizer = FakeAuthorizer()
        try await withServer(wallets: WalletSetup(authorizer: authorizer)) { server in
            let fixture = try await Self.fixture(server)
            let seen = authorizer.requests.count
            let cases: [(amount: String, status: HTTPResponse.Status, code: String)] = [
                ("0", .unprocessableContent, "invalid_amount"), ("-5", .unprocessableContent, "invalid_amount"),
                ("1.5", .badRequest, "invalid_field"), (#""10""#, .badRequest, "invalid_field"),
                ("1e30", .badRequest, "invalid_field"), ("9223372036854775808", .badRequest, "invalid_field"),
                ("null", .badRequest, "invalid_field"),
            ]
            for item in cases {
                let topUp = try await server.walletPost(
                    "/v1/wallets/\(fixture.wallet.id)/top_ups",
                    text: #"{"card_id":"\#(fixture.card.id)","amount":\#(item.amount),"currency":"EUR"}"#)
                Self.expectError(topUp, item.status, item.code)
                let transfer = try await server.walletPost(
                    "/v1/transfers",
                    text:
                        #"{"from_wallet":"\#(fixture.wallet.id)","to_wallet":"\#(fixture.other.id)","amount":\#(item.amount),"currency":"EUR"}"#
                )
                Self.expectError(transfer, item.status, item.code)
                if item.code == "invalid_field" {
                    #expect(topUp.errorMessage?.contains("amount") == true, "\(topUp)")
                }
            }
            #expect(authorizer.requests.count == seen, "no refused amount reached the acquirer")
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == 10_000)
            #expect(try await server.statement(fixture.wallet.id).count == 1)
        }
    }

    @Test("Transfers: insufficient funds, same wallet and balance overflow are 422 and move nothing")
    func transferRefusals() async throws {
        try await withServer(wallets: WalletSetup(authorizer: FakeAuthorizer())) { server in
            let fixture = try await Self.fixture(server, funds: 1000)
            Self.expectError(
                try await server.transfer(from: fixture.wallet.id, to: fixture.other.id, amount: 1001),
                .unprocessableContent, "insufficient_funds")
            Self.expectError(
                try await server.transfer(from: fixture.other.id, to: fixture.wallet.id, amount: 1),
                .unprocessableContent, "insufficient_funds")
            Self.expectError(
                try await server.transfer(from: fixture.wallet.id, to: fixture.wallet.id, amount: 1),
                .unprocessableContent, "same_wallet")
            // The whole balance may move; then nothing more.
            #expect(
                try await server.transfer(from: fixture.wallet.id, to: fixture.other.id, amount: 1000).status
                    == .created)
            Self.expectError(
                try await server.transfer(from: fixture.wallet.id, to: fixture.other.id, amount: 1),
                .unprocessableContent, "insufficient_funds")
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == 0)
            #expect(try await server.wallet(fixture.other.id).balances.posted == 1000)

            // Credits add up past 2^63 by moving 2^62 back and forth: amount_overflow, not a 500.
            let big = try await Self.fixture(server, funds: 1 << 62)
            #expect(
                try await server.transfer(from: big.wallet.id, to: big.other.id, amount: 1 << 62).status == .created)
            Self.expectError(
                try await server.transfer(from: big.other.id, to: big.wallet.id, amount: 1 << 62),
                .unprocessableContent, "amount_overflow")
            #expect(try await server.wallet(big.other.id).balances.posted == 1 << 62)
        }
    }

    @Test("Cards: an unknown or deleted token is 422 token_not_found; a card number is 400 invalid_token, not echoed")
    func cardRefusals() async throws {
        let authorizer = FakeAuthorizer()
        try await withServer(wallets: WalletSetup(authorizer: authorizer)) { server in
            let vault = server.vault
            authorizer.checkTokens { token in (try? await vault.tokens.metadata(of: token)) != nil }
            let fixture = try await Self.fixture(server)
            let wallet = fixture.wallet.id
            Self.expectError(
                try await server.walletPost("/v1/wallets/\(wallet)/cards", json: ["token": unknownToken]),
                .unprocessableContent, "token_not_found")
            for text in [TestCard.mastercard.pan, "tok_short", ""] {
                Self.expectError(
                    try await server.walletPost("/v1/wallets/\(wallet)/cards", json: ["token": text]), .badRequest,
                    "invalid_token", secrets: text.isEmpty ? [] : [text])
            }
            // Deleted before it was saved.
            let deleted = try await server.walletTokenized(.mastercard).token
            #expect(try await server.send(.delete, "/v1/tokens/\(deleted)").status == .noContent)
            Self.expectError(
                try await server.walletPost("/v1/wallets/\(wallet)/cards", json: ["token": deleted]),
                .unprocessableContent, "token_not_found")
            // Deleted after it was saved: the top-up fails, stored, and replays the same refusal.
            let saved = try await server.addCard(.amex, to: wallet)
            #expect(try await server.send(.delete, "/v1/tokens/\(saved.token)").status == .noContent)
            let key = UUID().uuidString
            let refused = try await server.topUp(wallet, card: saved.id, amount: 100, idempotencyKey: key)
            Self.expectError(refused, .unprocessableContent, "token_not_found")
            let seen = authorizer.requests.count
            let again = try await server.topUp(wallet, card: saved.id, amount: 100, idempotencyKey: key)
            #expect(again.status == refused.status && again.body == refused.body)
            #expect(authorizer.requests.count == seen, "a stored refusal does not reach the acquirer again")
            #expect(try await server.wallet(wallet).balances.posted == 10_000)
            // The same card saved twice is one card: 200 with the existing entry.
            let token = try await server.walletTokenized(.visa).token
            #expect(token != fixture.card.token, "tokenize without dedupe issues a new token")
            let same = try await server.walletPost("/v1/wallets/\(wallet)/cards", json: ["token": token])
            #expect(same.status == .ok, "\(same)")
            #expect(try same.decode(CardReply.self) == fixture.card)
            // Saved again with a new token, the card whose token was deleted takes it and can be charged.
            let renewed = try await server.walletTokenized(.amex).token
            let resaved = try await server.walletPost("/v1/wallets/\(wallet)/cards", json: ["token": renewed])
            #expect(resaved.status == .ok, "\(resaved)")
            let card = try resaved.decode(CardReply.self)
            #expect(card.id == saved.id && card.token == renewed)
            let charged = try await server.topUp(wallet, card: saved.id, amount: 100)
            #expect(try charged.decode(TopUpReply.self).status == "approved", "\(charged)")
            #expect(authorizer.requests.last?.token.rawValue == renewed)
            #expect(try await server.wallet(wallet).balances.posted == 10_100)
        }
    }

    @Test("Wallet input: owner_ref must be 1 to 128 printable ASCII characters and hold no card number")
    func ownerRef() async throws {
        try await withServer(wallets: WalletSetup()) { server in
            let cardNumbers = ["4111111111111111", "user 5555-5555-5555-4444"]
            for owner in ["", String(repeating: "o", count: 129), "tab\there", "ünïcode"] + cardNumbers {
                Self.expectError(
                    try await server.walletPost("/v1/wallets", json: ["owner_ref": owner, "currency": "EUR"]),
                    .badRequest, "invalid_owner_ref", secrets: cardNumbers)
            }
            let stored = try server.walletDatabaseBytes()
            for pan in ["4111111111111111", "5555-5555-5555-4444"] {
                let found = Bytes.contains(stored, pan)
                #expect(!found, "a refused owner_ref is not stored")
            }
            let wallet = try await server.createWallet(ownerRef: String(repeating: "o", count: 128))
            #expect(wallet.ownerRef.count == 128)
            #expect(wallet.balances == .init(posted: 0, pending: 0, available: 0))
            #expect(wallet.accountNumber.hasPrefix("DE"))
            let another = try await server.createWallet()
            #expect(another.accountNumber != wallet.accountNumber, "account numbers are never shared")
            #expect(try await server.wallet(wallet.id) == wallet)
        }
    }

    @Test("Malformed bodies are 400 (invalid_json, missing_field, invalid_field) and leave the key unused")
    func malformedBodies() async throws {
        try await withServer(wallets: WalletSetup(authorizer: FakeAuthorizer())) { server in
            let fixture = try await Self.fixture(server)
            let wallet = fixture.wallet.id
            let posts: [(uri: String, valid: String)] = [
                ("/v1/wallets", #"{"owner_ref":"dan","currency":"EUR"}"#),
                ("/v1/wallets/\(wallet)/cards", #"{"token":"\#(fixture.card.token)"}"#),
                ("/v1/wallets/\(wallet)/top_ups", #"{"card_id":"\#(fixture.card.id)","amount":5,"currency":"EUR"}"#),
                (
                    "/v1/transfers",
                    #"{"from_wallet":"\#(wallet)","to_wallet":"\#(fixture.other.id)","amount":5,"currency":"EUR"}"#
                ),
            ]
            for post in posts {
                let key = UUID().uuidString
                for text in ["{", "not json", "", "[]", "\"x\""] {
                    let reply = try await server.walletPost(post.uri, text: text, idempotencyKey: key)
                    #expect(reply.status == .badRequest, "\(post.uri) \(text): \(reply)")
                    #expect(["invalid_json", "invalid_field"].contains(reply.errorCode ?? ""), "\(reply)")
                }
                Self.expectError(
                    try await server.walletPost(post.uri, text: "{}", idempotencyKey: key), .badRequest, "missing_field"
                )
                Self.expectError(
                    try await server.walletPost(
                        post.uri, text: "{\"pad\":\"\(String(repeating: "x", count: 17 * 1024))\"}",
                        idempotencyKey: key),
                    .contentTooLarge, "body_too_large")
                // None of that used the key.
                let reply = try await server.walletPost(post.uri, text: post.valid, idempotencyKey: key)
                #expect(reply.status == .created || reply.status == .ok, "\(post.uri): \(reply)")
            }
        }
    }

    // MARK: Top-ups

    @Test("An approved top-up is 201 approved, credits the wallet and appears in the statement")
    func topUpApproved() async throws {
        let authorizer = FakeAuthorizer()
        try await withServer(wallets: WalletSetup(authorizer: authorizer)) { server in
            let fixture = try await Self.fixture(server, funds: 0)
            let (reply, window) = try await TimeWindow.measuring {
                try await server.topUp(fixture.wallet.id, card: fixture.card.id, amount: 2500)
            }
            #expect(reply.status == .created, "\(reply)")
            let topUp = try reply.decode(TopUpReply.self)
            #expect(topUp.status == "approved")
            #expect(topUp.walletId == fixture.wallet.id)
            #expect(topUp.cardId == fixture.card.id)
            #expect(topUp.amount == 2500 && topUp.currency == "EUR")
            #expect(topUp.authCode == "A1B2C3")
            #expect(topUp.acquirerReference == "acq-" + topUp.id)
            #expect(topUp.declineCode == nil)
            #expect(window.contains(topUp.createdAt), "created at \(topUp.createdAt), the call ran \(window)")
            let request = try #require(authorizer.requests.last)
            #expect(request.token.rawValue == fixture.card.token)
            #expect(request.amount == 2500 && request.currency == "EUR")
            #expect(request.reference == topUp.id, "the top-up's id is the acquirer reference")
            let wallet = try await server.wallet(fixture.wallet.id)
            #expect(wallet.balances == .init(posted: 2500, pending: 0, available: 2500))
            let statement = try await server.statement(fixture.wallet.id)
            try #require(statement.count == 1)
            #expect(statement[0].type == "top_up")
            #expect(statement[0].id == topUp.id)
            #expect(statement[0].amount == 2500 && statement[0].currency == "EUR")
            #expect(statement[0].counterpartyWallet == nil)
        }
    }

    @Test("A declined top-up is 201 declined with its decline code, and changes no balance")
    func topUpDeclined() async throws {
        let authorizer = FakeAuthorizer()
        authorizer.script(.decline("do_not_honor"))
        try await withServer(wallets: WalletSetup(authorizer: authorizer)) { server in
            let fixture = try await Self.fixture(server, funds: 0)
            let key = UUID().uuidString
            let reply = try await server.topUp(
                fixture.wallet.id, card: fixture.card.id, amount: 2500, idempotencyKey: key)
            #expect(reply.status == .created, "\(reply)")
            let topUp = try reply.decode(TopUpReply.self)
            #expect(topUp.status == "declined")
            #expect(topUp.declineCode == "do_not_honor")
            #expect(topUp.authCode == nil)
            #expect(topUp.acquirerReference == "acq-" + topUp.id)
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == 0)
            #expect(try await server.statement(fixture.wallet.id).isEmpty)
            // The decline is the key's outcome: a retry replays it without asking again.
            let again = try await server.topUp(
                fixture.wallet.id, card: fixture.card.id, amount: 2500, idempotencyKey: key)
            #expect(again.status == .created && again.body == reply.body)
            #expect(authorizer.requests.count == 1)
            // A new key is a new attempt (approved by default).
            let next = try await server.topUp(fixture.wallet.id, card: fixture.card.id, amount: 2500)
            #expect(try next.decode(TopUpReply.self).status == "approved")
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == 2500)
        }
    }

    @Test(
        "An acquirer failure is a 5xx with Retry-After and books nothing; the retry with the same key sends the same reference",
        arguments: [
            (AuthorizationError.Code.acquirerTimeout, 504, "acquirer_timeout"),
            (.acquirerUnavailable, 502, "acquirer_unavailable"),
        ])
    func acquirerFailureThenRetry(failure: AuthorizationError.Code, status: Int, code: String) async throws {
        let authorizer = FakeAuthorizer()
        try await withServer(wallets: WalletSetup(authorizer: authorizer)) { server in
            let fixture = try await Self.fixture(server, funds: 0)
            authorizer.script(.fail(failure), .fail(failure))
            let key = UUID().uuidString
            for _ in 0..<2 {
                let failed = try await server.topUp(
                    fixture.wallet.id, card: fixture.card.id, amount: 900, idempotencyKey: key)
                Self.expectError(failed, HTTPResponse.Status(code: status), code)
                #expect(failed.headers[.retryAfter] == "1", "\(failed.headers)")
                #expect(try await server.wallet(fixture.wallet.id).balances.posted == 0)
            }
            // The script is spent: the acquirer approves now.
            let retried = try await server.topUp(
                fixture.wallet.id, card: fixture.card.id, amount: 900, idempotencyKey: key)
            #expect(retried.status == .created, "\(retried)")
            let topUp = try retried.decode(TopUpReply.self)
            #expect(topUp.status == "approved")
            let references = authorizer.requests.map(\.reference)
            #expect(references == [topUp.id, topUp.id, topUp.id], "every attempt of one key sends one reference")
            // Once approved, the key replays without asking the acquirer again.
            let replay = try await server.topUp(
                fixture.wallet.id, card: fixture.card.id, amount: 900, idempotencyKey: key)
            #expect(replay.status == .created && replay.body == retried.body)
            #expect(authorizer.requests.count == 3)
            // The interrupted key still belongs to this request.
            Self.expectError(
                try await server.topUp(fixture.wallet.id, card: fixture.card.id, amount: 901, idempotencyKey: key),
                .unprocessableContent, "idempotency_key_reused")
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == 900)
            #expect(try await server.statement(fixture.wallet.id).map(\.id) == [topUp.id])
        }
    }

    @Test("Other authorization failures: no acquirer is 503 acquirer_not_configured; a gateway fault is 500")
    func otherAuthorizationFailures() async throws {
        try await withServer(wallets: WalletSetup(authorizer: nil)) { server in
            let fixture = try await Self.fixture(server, funds: 0)
            let reply = try await server.topUp(fixture.wallet.id, card: fixture.card.id, amount: 100)
            Self.expectError(reply, .serviceUnavailable, "acquirer_not_configured")
        }
        let authorizer = FakeAuthorizer()
        try await withServer(wallets: WalletSetup(authorizer: authorizer)) { server in
            let fixture = try await Self.fixture(server, funds: 0)
            authorizer.script(.fail(.notConfigured), .fail(.internalFailure))
            Self.expectError(
                try await server.topUp(fixture.wallet.id, card: fixture.card.id, amount: 100), .serviceUnavailable,
                "acquirer_not_configured")
            let fault = try await server.topUp(fixture.wallet.id, card: fixture.card.id, amount: 100)
            #expect(fault.status == .internalServerError, "\(fault)")
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == 0)
        }
    }

    @Test("A top-up whose credit cannot be booked is refused before the card is charged")
    func topUpOverflow() async throws {
        let authorizer = FakeAuthorizer()
        try await withServer(wallets: WalletSetup(authorizer: authorizer)) { server in
            let fixture = try await Self.fixture(server, funds: .max)
            let charged = authorizer.requests.count
            let reply = try await server.topUp(fixture.wallet.id, card: fixture.card.id, amount: 1)
            // The amount is held (pending) before the acquirer is asked, and the hold is refused:
            // nothing is charged that could not be booked.
            Self.expectError(reply, .unprocessableContent, "amount_overflow")
            #expect(authorizer.requests.count == charged, "the acquirer was asked to charge what cannot be booked")
            #expect(try await server.wallet(fixture.wallet.id).balances.posted == .max)
        }
    }

    // MARK: Statements

    @Test("Statement pages cover every entry once, in order, with next_after null on the last page")
    func statementPagination() async throws {
        try await withServer(wallets: WalletSetup(authorizer: FakeAuthorizer())) { server in
            let fixture = try await Self.fixture(server, funds: 1000)
            for amount in [200, 300] as [Int64] {
                #expect(
                    try await server.topUp(fixture.wallet.id, card: fixture.card.id, amount: amount).status == .created)
            }
            for amount in [1, 2, 3, 4] as [Int64] {
                #expect(
                    try await server.transfer(from: fixture.wallet.id, to: fixture.other.id, amount: amount).status
                        == .created)
            }
            #expect(
                try await server.transfer(from: fixture.other.id, to: fixture.wallet.id, amount: 5).status == .created)
            let all = try await server.statement(fixture.wallet.id)
            try #require(all.count == 8)
            #expect(
                all.map(\.type) == ["top_up", "top_up", "top_up"] + Array(repeating: "transfer_out", count: 4) + [
                    "transfer_in"
                ])
            #expect(all.map(\.amount) == [1000, 200, 300, -1, -2, -3, -4, 5])
            #expect(all.reduce(0) { $0 + $1.amount } == (try await server.wallet(fixture.wallet.id)).balances.posted)
            #expect(zip(all, all.dropFirst()).allSatisfy { $0.sequence < $1.sequence })
            #expect(Set(all.map(\.id)).count == all.count)
            #expect(all.filter { $0.type != "top_up" }.allSatisfy { $0.counterpartyWallet == fixture.other.id })

            for limit in [1, 2, 3, 4, 7, 8, 9, 1000] {
                var pages = [[StatementEntryReply]]()
                var after: Int64 = 0
                while true {
                    let reply = try await server.walletGet(
                        "/v1/wallets/\(fixture.wallet.id)/transactions?after=\(after)&limit=\(limit)")
                    try #require(reply.status == .ok, "\(reply)")
                    let page = try reply.decode(StatementPageReply.self)
                    pages.append(page.transactions)
                    try #require(pages.count <= all.count + 1, "pagination does not end")
                    guard let next = page.nextAfter else { break }
                    #expect(page.transactions.count == limit, "only a full page has a cursor")
                    #expect(next == page.transactions.last?.sequence)
                    after = next
                }
                #expect(pages.flatMap { $0 } == all, "limit \(limit)")
                #expect(pages.count == (all.count + limit - 1) / limit, "limit \(limit): no empty last page")
            }
            // Past the end: an empty last page.
            let end = try await server.walletGet(
                "/v1/wallets/\(fixture.wallet.id)/transactions?after=\(all.last!.sequence)")
            let last = try end.decode(StatementPageReply.self)
            #expect(last.transactions.isEmpty && last.nextAfter == nil)
            #expect(end.contains(#""next_after":null"#), "next_after is present, as null")
            let incoming = try await server.statement(fixture.other.id, limit: 2)
            #expect(incoming.map(\.type) == Array(repeating: "transfer_in", count: 4) + ["transfer_out"])
        }
    }

    @Test("Statement query errors: limit outside 1…1000 is invalid_limit, a bad after is invalid_after")
    func statementQueryErrors() async throws {
        try await withServer(wallets: WalletSetup()) { server in
            let wallet = try await server.createWallet()
            let uri = "/v1/wallets/\(wallet.id)/transactions"
            for query in ["limit=0", "limit=1001", "limit=x", "limit=-1", "limit=1.5"] {
                Self.expectError(try await server.walletGet("\(uri)?\(query)"), .badRequest, "invalid_limit")
            }
            for query in ["after=-1", "after=x", "after=1e3", "after=99999999999999999999"] {
                Self.expectError(try await server.walletGet("\(uri)?\(query)"), .badRequest, "invalid_after")
            }
            #expect(try await server.walletGet("\(uri)?limit=1000&after=0").status == .ok)
        }
    }

    // MARK: Card data

    @Test("wallet.db and its WAL hold none of the PANs used, and no CVV")
    func noCardDataInWalletDatabase() async throws {
        let authorizer = FakeAuthorizer()
        // A decline code such as `incorrect_cvv` would be stored (it is the acquirer's word, not card data).
        authorizer.script(.approve, .decline("do_not_honor"), .fail(.acquirerTimeout))
        try await withServer(wallets: WalletSetup(authorizer: authorizer)) { server in
            var generator = SeededGenerator(seed: 0x3A11E7)
            let cards =
                TestCard.published.map { $0.with(cvv: $0.brand == .amex ? "1234" : "123") }
                + (0..<6).map { _ in PANGenerator.card(withCVV: true, using: &generator) }
            let wallet = try await server.createWallet()
            let other = try await server.createWallet()
            var saved = [CardReply]()
            for (index, card) in cards.enumerated() {
                let format = index.isMultiple(of: 2) ? "numeric" : "opaque"
                let reply = try await server.tokenize(card, format: format, auth: server.walletAuth)
                try #require(reply.status == .created, "\(reply)")
                let token = try reply.decode(TokenReply.self).token
                let added = try await server.walletPost("/v1/wallets/\(wallet.id)/cards", json: ["token": token])
                try #require(added.status == .created, "\(added)")
                #expect(!added.contains(card.digits))
                saved.append(try added.decode(CardReply.self))
                // A card number where a token belongs is refused and not kept.
                let refused = try await server.walletPost(
                    "/v1/wallets/\(wallet.id)/cards", json: ["token": card.digits])
                Self.expectError(refused, .badRequest, "invalid_token", secrets: [card.digits])
            }
            for card in saved.prefix(4) {
                let reply = try await server.topUp(wallet.id, card: card.id, amount: 1000)
                #expect(reply.status.code < 500 || reply.errorCode == "acquirer_timeout", "\(reply)")
            }
            #expect(try await server.transfer(from: wallet.id, to: other.id, amount: 10).status == .created)
            let bytes = try server.walletDatabaseBytes()
            #expect(bytes.count > 4096, "wallet.db was written")
            for card in cards {
                let found = Bytes.contains(bytes, card.digits)
                #expect(!found, "\(card) is in wallet.db")
            }
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(PANScanner.leaked(Set(cards.map(\.digits)), in: text).isEmpty)
            // Random ids and tokens may hold the letters "cvv" by chance (they did, once in CI), so look
            // for the word as a JSON key or a column name: quoted, or followed by a space or a comma.
            let lowercased = bytes.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
            for needle in [#""cvv""#, "cvv ", "cvv,", #""cvc""#, "cvc ", "cvc,"] {
                let found = Bytes.contains(lowercased, needle)
                #expect(!found, "\(needle) is in wallet.db")
            }
            let holdsToken = Bytes.contains(bytes, saved[0].token)
            #expect(holdsToken, "the scan reads the stored rows")
        }
    }
}
