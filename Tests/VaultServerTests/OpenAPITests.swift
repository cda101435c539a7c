import CardIssuing
import CardTokens
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import TokenVault
import VaultServer
import VaultTestSupport
import Wallet

/// `docs/openapi.yaml` describes exactly the routes each listener serves (the public router with
/// the wallet routes, and the detokenize router), and every error code the server can send.
@Suite("OpenAPI document", .timeLimit(.minutes(10)))
struct OpenAPITests {
    /// The three listeners of `vault serve`.
    enum Listener: String, CaseIterable, Comparable, CustomStringConvertible {
        case `public`
        case detokenize
        case network

        /// The server URL the document gives this listener: its default address.
        var url: String {
            let defaults = VaultConfiguration.defaults
            let port =
                switch self {
                case .public: defaults.publicPort
                case .detokenize: defaults.detokenizePort
                case .network: defaults.networkPort
                }
            return "http://\(defaults.host):\(port)"
        }

        var description: String { rawValue }

        static func < (lhs: Listener, rhs: Listener) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    /// The repository's root, found from this file's path (`Tests/VaultServerTests/…`).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func document() throws -> [Substring] {
        let url = root.appendingPathComponent("docs/openapi.yaml")
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// The routes under `paths:` by listener, read line by line: a path is a key indented by two
    /// spaces, an operation a key indented by four, and the listeners serving a path are the
    /// `url`s of its `servers:` override (which every path must have).
    static func documentedRoutes() throws -> [Listener: Set<RouteKey>] {
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
        var routes = [Listener: Set<RouteKey>]()
        var path: String?
        var operations = Set<RouteKey>()
        var listeners = Set<Listener>()
        var inServers = false
        func finishPath() throws {
            guard let path else { return }
            try #require(!listeners.isEmpty, "\(path) has no servers: override naming its listener")
            for listener in listeners { routes[listener, default: []].formUnion(operations) }
        }
        var inPaths = false
        for line in try document() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("#") { continue }
            if !line.hasPrefix(" ") {
                if inPaths { try finishPath() }
                inPaths = line.hasPrefix("paths:")
                path = nil
                continue
            }
            guard inPaths else { continue }
            if let match = line.wholeMatch(of: /^  (\/[^:\s]*):\s*/) {
                try finishPath()
                path = String(match.1)
                operations = []
                listeners = []
                inServers = false
            } else if line.wholeMatch(of: /^    servers:\s*/) != nil {
                inServers = true
            } else if inServers, let match = line.wholeMatch(of: /^      - url: (\S+)\s*/) {
                let url = String(match.1)
                let listener = try #require(
                    Listener.allCases.first { $0.url == url }, "\(path ?? "?"): unknown server \(url)")
                listeners.insert(listener)
            } else if let match = line.wholeMatch(of: /^    ([a-z]+):\s*/) {
                inServers = false
                guard methods.contains(String(match.1)) else { continue }
                let path = try #require(path, "an operation before any path: \(line)")
                operations.insert(RouteKey(method: match.1.uppercased(), path: path))
            }
        }
        try finishPath()
        return routes
    }

    /// The values of `components.schemas.ErrorCode.enum`.
    static func documentedErrorCodes() throws -> Set<String> {
        let lines = try document()
        let start = try #require(lines.firstIndex { $0 == "    ErrorCode:" }, "no ErrorCode schema")
        var codes = Set<String>()
        var inEnum = false
        for line in lines[(start + 1)...] {
            let indent = line.prefix { $0 == " " }.count
            if !line.isEmpty && indent <= 4 { break }
            if line.hasPrefix("      enum:") {
                inEnum = true
            } else if inEnum, let match = line.wholeMatch(of: /^        - ([a-z_]+)\s*/) {
                codes.insert(String(match.1))
            } else if indent <= 6 {
                inEnum = false
            }
        }
        return codes
    }

    /// The property names of `components.schemas.<schema>`.
    static func documentedProperties(of schema: String) throws -> Set<String> {
        let lines = try document()
        let start = try #require(lines.firstIndex { $0 == "    \(schema):" }, "no \(schema) schema")
        var properties = Set<String>()
        var inProperties = false
        for line in lines[(start + 1)...] {
            let indent = line.prefix { $0 == " " }.count
            if !line.isEmpty && indent <= 4 { break }
            if line.hasPrefix("      properties:") {
                inProperties = true
            } else if inProperties, let match = line.wholeMatch(of: /^        ([a-z_0-9]+):\s*/) {
                properties.insert(String(match.1))
            } else if indent <= 6 {
                inProperties = false
            }
        }
        return properties
    }

    /// The routes the router serves, from Hummingbird's own list.
    static func servedRoutes(of router: Router<VaultRequestContext>) -> Set<RouteKey> {
        Set(router.routes.map { RouteKey(method: $0.method.rawValue, path: $0.path.description) })
    }

    /// Every error code the server can send: those of `CardValidationError` and `WalletError`
    /// (all of which `APIError` passes through), the `VaultError`s that reach a route, and the
    /// literals in `Sources/VaultServer` (the wallet controller's included) and
    /// `Sources/Detokenization`.
    static func emittedErrorCodes() throws -> Set<String> {
        var codes = Set<String>()
        for path in ["Sources/CardTokens/CardValidationError.swift", "Sources/Wallet/WalletError.swift"] {
            let source = try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
            let found = source.matches(of: /Self\("([a-z_]+)"[,)]/).map { String($0.1) }
            #expect(!found.isEmpty, "no codes in \(path)")
            codes.formUnion(found)
        }
        for code in [
            VaultError.Code.tokenNotFound, .tokenSpaceExhausted, .invalidArgument, .dedupeExpiryMismatch,
            .similarCardsLimit, .keyVersionActive,
        ] {
            codes.insert(VaultError(code, "").errorCode)
        }
        var files = [URL]()
        for directory in ["Sources/VaultServer", "Sources/Detokenization", "Sources/HTTPListener"] {
            let folder = root.appendingPathComponent(directory)
            let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            for name in names where name.hasSuffix(".swift") {
                files.append(folder.appendingPathComponent(name))
            }
        }
        #expect(files.contains { $0.lastPathComponent == "Detokenizer.swift" })
        #expect(files.contains { $0.lastPathComponent == "WalletController.swift" })
        for file in files {
            let name = file.lastPathComponent
            let source = try String(contentsOf: file, encoding: .utf8)
            for match in source.matches(of: /code: "([a-z_]+)"/) {
                codes.insert(String(match.1))
            }
            // The HTTPError mapping: `case .notFound: "not_found"` and its ternary default.
            guard name == "APIError.swift" else { continue }
            for match in source.matches(of: /case \.[A-Za-z]+: "([a-z_]+)"/) {
                codes.insert(String(match.1))
            }
            for match in source.matches(of: /\? "([a-z_]+)" : "([a-z_]+)"/) {
                codes.insert(String(match.1))
                codes.insert(String(match.2))
            }
        }
        return codes
    }

    /// The routes each listener's router serves, the public one with the wallet routes.
    static func servedRoutes(vault: Vault, wallets: WalletSide) -> [Listener: Set<RouteKey>] {
        [
            .public: servedRoutes(of: VaultApplication.publicRouter(vault: vault, wallets: wallets)),
            .detokenize: servedRoutes(
                of: VaultApplication.detokenizeRouter(
                    vault: vault, rateLimit: nil, logger: TestLog.capturing().0)),
            .network: servedRoutes(of: networkRouter(vault: vault, wallets: wallets)),
        ]
    }

    static func networkRouter(vault: Vault, wallets: WalletSide) -> Router<VaultRequestContext> {
        VaultApplication.networkRouter(
            vault: vault, issuer: try! VaultCardIssuer(tokens: vault.tokens, logger: TestLog.quiet()),
            network: wallets.network)
    }

    /// Runs `body` with a test server for each listener over one vault: the public router with
    /// the wallet routes (key with `tokenize`, `tokens:read`, `tokens:delete`, and a wallet key)
    /// and the detokenize router (key with `detokenize` for purpose `settlement`, and
    /// `audit:read`), without a rate limit.
    static func withListeners<R: Sendable>(
        _ body: @Sendable (_ servers: [Listener: TestServer]) async throws -> R
    ) async throws -> R {
        try await withServer(wallets: WalletSetup()) { server in
            let (_, secret) = try await server.vault.credentials.create(
                name: "back-office", scopes: [.detokenize, .auditRead], purposes: ["settlement:pan"])
            let (logger, _) = TestLog.capturing(level: .warning)
            let router = VaultApplication.detokenizeRouter(vault: server.vault, rateLimit: nil, logger: logger)
            let (_, networkSecret) = try await server.vault.credentials.create(
                name: "network", scopes: [.network], purposes: [])
            let networkApplication = Application(
                router: Self.networkRouter(vault: server.vault, wallets: try #require(server.walletSide)),
                logger: logger)
            return try await Application(router: router, logger: logger).test(.router) { client in
                let detokenize = TestServer(vault: server.vault, logs: server.logs, client: client, key: secret)
                return try await networkApplication.test(.router) { networkClient in
                    let network = TestServer(
                        vault: server.vault, logs: server.logs, client: networkClient, key: networkSecret)
                    return try await body([.public: server, .detokenize: detokenize, .network: network])
                }
            }
        }
    }

    @Test("The document lists exactly the routes of each listener's router")
    func routesAgree() async throws {
        let documented = try Self.documentedRoutes()
        #expect(Set(documented.keys) == Set(Listener.allCases), "\(documented)")
        try await withServer(wallets: WalletSetup()) { server in
            let served = Self.servedRoutes(vault: server.vault, wallets: try #require(server.walletSide))
            for listener in Listener.allCases {
                let documented = documented[listener] ?? []
                let served = served[listener] ?? []
                #expect(
                    documented == served,
                    "\(listener): documented only: \(documented.subtracting(served).sorted()), served only: \(served.subtracting(documented).sorted())"
                )
            }
            let publicRoutes = served[.public] ?? []
            let detokenizeRoutes = served[.detokenize] ?? []
            #expect(publicRoutes.count >= 5)
            #expect(detokenizeRoutes.count >= 3)
            let health: Set = [RouteKey(method: "GET", path: "/healthz")]
            #expect(publicRoutes.intersection(detokenizeRoutes) == health, "only /healthz is on both listeners")
            #expect(
                !publicRoutes.contains { $0.path.contains("detokenize") || $0.path.contains("audit") },
                "the public listener has no detokenize or audit route")
            #expect(detokenizeRoutes.contains(RouteKey(method: "POST", path: "/v1/detokenize")))
            #expect(publicRoutes.contains(RouteKey(method: "POST", path: "/v1/transfers")))
            #expect(publicRoutes.filter { $0.path.hasPrefix("/v1/wallets") }.count == 8)
            #expect(publicRoutes.filter { $0.path.hasPrefix("/v1/virtual_cards") }.count == 4)
            let networkRoutes = served[.network] ?? []
            #expect(networkRoutes.subtracting(health).allSatisfy { $0.path.hasPrefix("/v1/network/") })
            #expect(networkRoutes.intersection(publicRoutes.union(detokenizeRoutes)) == health)
            #expect(
                !detokenizeRoutes.contains { $0.path.contains("wallet") || $0.path.contains("transfer") },
                "the detokenize listener has no wallet route")
        }
    }

    @Test("Every documented route is routed on its listener, and not found on the other")
    func documentedRoutesAnswer() async throws {
        let documented = try Self.documentedRoutes()
        #expect(!documented.isEmpty)
        try await Self.withListeners { servers in
            for listener in Listener.allCases {
                let server = try #require(servers[listener])
                let routes = documented[listener] ?? []
                let elsewhere = documented.filter { $0.key != listener }.values.reduce(into: Set()) {
                    $0.formUnion($1)
                }
                for route in routes.union(elsewhere).sorted() {
                    let method = try #require(HTTPRequest.Method(route.method))
                    let uri = route.path.replacingOccurrences(of: "{token}", with: unknownToken)
                        .replacingOccurrences(of: "{wallet}", with: unknownWallet)
                        .replacingOccurrences(of: "{virtual_card}", with: "vc_aaaaaaaaaaaaaaaaaaaaaaaaaa")
                    let body = method == .post ? ByteBuffer(string: "{}") : nil
                    // The wallet key reaches past the scope check (to 400 or 404 wallet_not_found).
                    let walletAuth = server.walletKey.map { [Auth.bearer($0)] } ?? []
                    for auth in [Auth.standard, .none] + walletAuth {
                        let reply = try await server.send(method, uri, auth: auth, body: body)
                        guard routes.contains(route) else {
                            #expect(
                                reply.status == .notFound && reply.errorCode == "not_found",
                                "\(route) must not be served by the \(listener) listener: \(reply)")
                            continue
                        }
                        #expect(reply.status != .methodNotAllowed, "\(listener) \(route): \(reply)")
                        #expect(
                            !(reply.status == .notFound && reply.errorCode == "not_found"),
                            "\(listener) \(route): \(reply)")
                        #expect(reply.status.code < 500, "\(listener) \(route): \(reply)")
                    }
                }
            }
        }
    }

    @Test("Token responses have exactly the documented TokenMetadata properties")
    func tokenMetadataAgrees() async throws {
        let documented = try Self.documentedProperties(of: "TokenMetadata")
        #expect(documented.contains("cvv_held"))
        try await withServer { server in
            let created = try await server.tokenize(TestCard.visa.with(cvv: "123"))
            let read = try await server.send(.get, "/v1/tokens/\(try created.decode(TokenReply.self).token)")
            let batch = try await server.post(
                "/v1/tokens/batch", json: ["cards": [TestCard.visa.with(cvv: "123").json()]])
            let bodies: [Any] = [
                try JSONSerialization.jsonObject(with: Data(created.body)),
                try JSONSerialization.jsonObject(with: Data(read.body)),
                try #require(
                    (try JSONSerialization.jsonObject(with: Data(batch.body)) as? [String: Any])?["results"] as? [Any]
                ).first as Any,
            ]
            for body in bodies {
                let keys = Set(try #require(body as? [String: Any]).keys)
                #expect(
                    keys == documented,
                    "sent only: \(keys.subtracting(documented)), documented only: \(documented.subtracting(keys))")
            }
            let error = try await server.post("/v1/tokens", text: "{}")
            let envelope = try #require(try JSONSerialization.jsonObject(with: Data(error.body)) as? [String: Any])
            #expect(Set(envelope.keys) == ["error"])
            #expect(Set(try #require(envelope["error"] as? [String: Any]).keys) == ["code", "message"])
        }
    }

    @Test("The document's ErrorCode enum lists every code the server can send")
    func errorCodesAgree() throws {
        let documented = try Self.documentedErrorCodes()
        let emitted = try Self.emittedErrorCodes()
        #expect(emitted.count >= 20, "\(emitted.sorted())")
        #expect(emitted.isSubset(of: documented), "undocumented: \(emitted.subtracting(documented).sorted())")
        #expect(
            documented.isSubset(of: emitted), "documented but never sent: \(documented.subtracting(emitted).sorted())")
    }

    @Test("Detokenize and audit responses have exactly the documented properties")
    func detokenizeAndAuditAgree() async throws {
        let card = try Self.documentedProperties(of: "DetokenizedCard")
        let itemError = try Self.documentedProperties(of: "DetokenizeItemError")
        let page = try Self.documentedProperties(of: "AuditPage")
        let record = try Self.documentedProperties(of: "AuditRecord")
        #expect(card.isSuperset(of: ["token", "pan", "masked_pan", "exp_month", "exp_year"]))
        try await Self.withListeners { servers in
            let tokenizer = try #require(servers[.public])
            let detokenizer = try #require(servers[.detokenize])
            let token = try await tokenizer.tokenized(TestCard.visa).token
            for reveal in ["masked", "pan"] {
                let reply = try await detokenizer.post(
                    "/v1/detokenize",
                    json: [
                        "tokens": [token, unknownToken, "not-a-token"], "purpose": "settlement",
                        "reference": "openapi-test", "reveal": reveal,
                    ])
                try #require(reply.status == .ok, "\(reply)")
                let body = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
                #expect(Set(body.keys) == ["results"])
                let results = try #require(body["results"] as? [[String: Any]])
                try #require(results.count == 3)
                let revealed = reveal == "pan" ? "pan" : "masked_pan"
                // `cvv` is only for an issued card under cardholder_reveal (CardholderRevealTests).
                #expect(Set(results[0].keys) == card.subtracting(["pan", "masked_pan", "cvv"]).union([revealed]))
                #expect(Set(results[1].keys) == itemError)
                #expect(Set(results[2].keys) == itemError)
                #expect(results[2]["token"] is NSNull, "a string that is not a token is never echoed")
            }
            let reply = try await detokenizer.send(.get, "/v1/audit?limit=2")
            try #require(reply.status == .ok, "\(reply)")
            let body = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
            #expect(Set(body.keys) == page, "a full page has next_after")
            let records = try #require(body["records"] as? [[String: Any]])
            #expect(records.count == 2)
            var seen = Set<String>()
            for entry in records {
                let keys = Set(entry.keys)
                #expect(keys.isSubset(of: record), "undocumented: \(keys.subtracting(record))")
                seen.formUnion(keys)
            }
            let all = try await detokenizer.send(.get, "/v1/audit?limit=1000")
            let last = try #require(try JSONSerialization.jsonObject(with: Data(all.body)) as? [String: Any])
            #expect(Set(last.keys) == page, "the last page has next_after too")
            #expect(last["next_after"] is NSNull, "next_after is null on the last page")
            for entry in try #require(last["records"] as? [[String: Any]]) {
                let keys = Set(entry.keys)
                #expect(keys.isSubset(of: record), "undocumented: \(keys.subtracting(record))")
                seen.formUnion(keys)
            }
            #expect(seen == record, "documented but never sent: \(record.subtracting(seen))")
        }
    }

    @Test("Wallet responses have exactly the documented properties")
    func walletResponsesAgree() async throws {
        let schemas = [
            "WalletResponse", "Balances", "CardOnFile", "CardList", "TopUp", "Transfer", "StatementPage",
            "StatementEntry",
        ]
        var documented = [String: Set<String>]()
        for schema in schemas {
            documented[schema] = try Self.documentedProperties(of: schema)
            #expect(documented[schema]?.isEmpty == false, "\(schema) has no properties")
        }
        let authorizer = FakeAuthorizer()
        // The second top-up is declined, so both kinds of top-up are checked.
        authorizer.script(.approve, .decline("do_not_honor"))
        try await withServer(wallets: WalletSetup(authorizer: authorizer)) { [documented] server in
            /// `value` as an object with exactly the documented properties of `schema`.
            func check(_ value: Any?, _ schema: String) throws -> [String: Any] {
                let object = try #require(value as? [String: Any], "\(schema): not an object")
                let keys = Set(object.keys)
                let expected = try #require(documented[schema])
                #expect(
                    keys == expected,
                    "\(schema): sent only \(keys.subtracting(expected).sorted()), documented only \(expected.subtracting(keys).sorted())"
                )
                return object
            }
            func body(_ reply: Reply, _ status: HTTPResponse.Status) throws -> Any {
                try #require(reply.status == status, "\(reply)")
                return try JSONSerialization.jsonObject(with: Data(reply.body))
            }

            let wallet = try check(
                try body(
                    try await server.walletPost("/v1/wallets", json: ["owner_ref": "alice", "currency": "EUR"]),
                    .created),
                "WalletResponse")
            _ = try check(wallet["balances"], "Balances")
            let walletID = try #require(wallet["id"] as? String)
            let read = try check(try body(try await server.walletGet("/v1/wallets/\(walletID)"), .ok), "WalletResponse")
            _ = try check(read["balances"], "Balances")
            let other = try await server.createWallet()

            let token = try await server.walletTokenized(TestCard.visa).token
            let card = try check(
                try body(
                    try await server.walletPost("/v1/wallets/\(walletID)/cards", json: ["token": token]), .created),
                "CardOnFile")
            let cardID = try #require(card["id"] as? String)
            let again = try await server.walletPost("/v1/wallets/\(walletID)/cards", json: ["token": token])
            _ = try check(try body(again, .ok), "CardOnFile")
            let list = try check(try body(try await server.walletGet("/v1/wallets/\(walletID)/cards"), .ok), "CardList")
            let cards = try #require(list["cards"] as? [Any])
            try #require(cards.count == 1)
            _ = try check(cards[0], "CardOnFile")

            for status in ["approved", "declined"] {
                let topUp = try check(
                    try body(try await server.topUp(walletID, card: cardID, amount: 500), .created), "TopUp")
                #expect(topUp["status"] as? String == status)
                #expect((topUp["auth_code"] is NSNull) == (status == "declined"), "auth_code is null when declined")
                #expect(
                    (topUp["decline_code"] is NSNull) == (status == "approved"), "decline_code is null when approved")
            }
            _ = try check(
                try body(try await server.transfer(from: walletID, to: other.id, amount: 200), .created), "Transfer")

            let first = try check(
                try body(try await server.walletGet("/v1/wallets/\(walletID)/transactions?limit=1"), .ok),
                "StatementPage")
            #expect(first["next_after"] is NSNumber, "a full page with more to come has a cursor")
            let all = try check(
                try body(try await server.walletGet("/v1/wallets/\(walletID)/transactions"), .ok), "StatementPage")
            #expect(all["next_after"] is NSNull, "next_after is present and null on the last page")
            let entries = try #require(all["transactions"] as? [Any])
            try #require(entries.count == 2, "one approved top-up and one transfer out")
            var types = Set<String>()
            for entry in entries {
                let object = try check(entry, "StatementEntry")
                let type = try #require(object["type"] as? String)
                types.insert(type)
                #expect((object["counterparty_wallet"] is NSNull) == (type == "top_up"))
            }
            #expect(types == ["top_up", "transfer_out"])
            let incoming = try check(
                try body(try await server.walletGet("/v1/wallets/\(other.id)/transactions"), .ok), "StatementPage")
            let entry = try check((incoming["transactions"] as? [Any])?.first, "StatementEntry")
            #expect(entry["type"] as? String == "transfer_in")
        }
    }

    @Test("The document declares bearer auth, every listener's server, and an open /healthz")
    func documentBasics() throws {
        let text = try Self.document().joined(separator: "\n")
        #expect(text.hasPrefix("openapi: 3.1"))
        #expect(text.contains("scheme: bearer"))
        #expect(!text.contains("later version"))
        let servers = try #require(text.range(of: "\nservers:\n"))
        let end = text[servers.upperBound...].range(of: "\n[a-z]", options: .regularExpression)?.lowerBound
        let topLevel = text[servers.upperBound..<(end ?? text.endIndex)]
        for listener in Listener.allCases {
            #expect(topLevel.contains("  - url: \(listener.url)\n"), "no top-level server for \(listener)")
        }
        let health = try #require(text.range(of: "  /healthz:"))
        let next = text[health.upperBound...].range(of: "\n  /")?.lowerBound ?? text.endIndex
        #expect(text[health.upperBound..<next].contains("security: []"))
    }
}
