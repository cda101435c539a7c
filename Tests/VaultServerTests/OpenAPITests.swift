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

/// `docs/openapi.yaml` describes exactly the routes each listener serves (the public router and
/// the detokenize router), and every error code the server can send.
@Suite("OpenAPI document")
struct OpenAPITests {
    /// The two listeners of `vault serve`.
    enum Listener: String, CaseIterable, Comparable, CustomStringConvertible {
        case `public`
        case detokenize

        /// The server URL the document gives this listener: its default address.
        var url: String {
            let defaults = ServerConfiguration()
            return "http://\(defaults.host):\(self == .public ? defaults.publicPort : defaults.detokenizePort)"
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

    /// Every error code the server can send: those of `CardValidationError`, the `VaultError`s
    /// `APIError` maps, and the literals in `Sources/VaultServer` and `Sources/Detokenization`.
    static func emittedErrorCodes() throws -> Set<String> {
        var codes = Set<String>()
        let validation = try String(
            contentsOf: root.appendingPathComponent("Sources/CardTokens/CardValidationError.swift"), encoding: .utf8)
        for match in validation.matches(of: /Self\("([a-z_]+)"\)/) {
            codes.insert(String(match.1))
        }
        for code in [VaultError.Code.tokenNotFound, .tokenSpaceExhausted, .invalidArgument] {
            codes.insert(code.rawValue)
        }
        var files = [URL]()
        for directory in ["Sources/VaultServer", "Sources/Detokenization"] {
            let folder = root.appendingPathComponent(directory)
            let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            for name in names where name.hasSuffix(".swift") {
                files.append(folder.appendingPathComponent(name))
            }
        }
        #expect(files.contains { $0.lastPathComponent == "Detokenizer.swift" })
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

    /// The routes each listener's router serves.
    static func servedRoutes(vault: Vault) -> [Listener: Set<RouteKey>] {
        [
            .public: servedRoutes(of: VaultApplication.publicRouter(vault: vault)),
            .detokenize: servedRoutes(
                of: VaultApplication.detokenizeRouter(
                    vault: vault, rateLimit: nil, logger: TestLog.capturing().0)),
        ]
    }

    /// Runs `body` with a test server for each listener over one vault: the public router (key
    /// with `tokenize`, `tokens:read`, `tokens:delete`) and the detokenize router (key with
    /// `detokenize` for purpose `settlement`, and `audit:read`), without a rate limit.
    static func withListeners<R: Sendable>(
        _ body: @Sendable (_ servers: [Listener: TestServer]) async throws -> R
    ) async throws -> R {
        try await withServer { server in
            let (_, secret) = try await server.vault.credentials.create(
                name: "back-office", scopes: [.detokenize, .auditRead], purposes: ["settlement"])
            let (logger, _) = TestLog.capturing(level: .warning)
            let router = VaultApplication.detokenizeRouter(vault: server.vault, rateLimit: nil, logger: logger)
            return try await Application(router: router, logger: logger).test(.router) { client in
                let detokenize = TestServer(vault: server.vault, logs: server.logs, client: client, key: secret)
                return try await body([.public: server, .detokenize: detokenize])
            }
        }
    }

    @Test("The document lists exactly the routes of each listener's router")
    func routesAgree() async throws {
        let documented = try Self.documentedRoutes()
        #expect(Set(documented.keys) == Set(Listener.allCases), "\(documented)")
        try await withServer { server in
            let served = Self.servedRoutes(vault: server.vault)
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
                    let body = method == .post ? ByteBuffer(string: "{}") : nil
                    for auth in [Auth.standard, .none] {
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
                #expect(Set(results[0].keys) == card.subtracting(["pan", "masked_pan"]).union([revealed]))
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

    @Test("The document declares bearer auth, both listeners' servers, and an open /healthz")
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
