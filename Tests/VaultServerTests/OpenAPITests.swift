import CardTokens
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Testing
import TokenVault
import VaultServer

/// `docs/openapi.yaml` describes exactly the routes the public router serves, and every error
/// code the server can send.
@Suite("OpenAPI document")
struct OpenAPITests {
    /// The repository's root, found from this file's path (`Tests/VaultServerTests/…`).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func document() throws -> [Substring] {
        let url = root.appendingPathComponent("docs/openapi.yaml")
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
    }

    /// The routes under `paths:`, read line by line: a path is a key indented by two spaces,
    /// an operation a key indented by four.
    static func documentedRoutes() throws -> Set<RouteKey> {
        let methods: Set<String> = ["get", "put", "post", "delete", "patch", "head", "options", "trace"]
        var routes = Set<RouteKey>()
        var inPaths = false
        var path: String?
        for line in try document() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty || line.hasPrefix("#") { continue }
            if !line.hasPrefix(" ") {
                inPaths = line.hasPrefix("paths:")
                path = nil
                continue
            }
            guard inPaths else { continue }
            if let match = line.wholeMatch(of: /^  (\/[^:\s]*):\s*/) {
                path = String(match.1)
            } else if let match = line.wholeMatch(of: /^    ([a-z]+):\s*/), methods.contains(String(match.1)) {
                let path = try #require(path, "an operation before any path: \(line)")
                routes.insert(RouteKey(method: match.1.uppercased(), path: path))
            }
        }
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
    /// `APIError` maps, and the literals in `Sources/VaultServer`.
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
        let server = root.appendingPathComponent("Sources/VaultServer")
        for name in try FileManager.default.contentsOfDirectory(atPath: server.path) where name.hasSuffix(".swift") {
            let source = try String(contentsOf: server.appendingPathComponent(name), encoding: .utf8)
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

    @Test("The document lists exactly the routes of the public router")
    func routesAgree() async throws {
        let documented = try Self.documentedRoutes()
        try await withServer { server in
            let served = Self.servedRoutes(of: VaultApplication.publicRouter(vault: server.vault))
            #expect(
                documented == served,
                "documented only: \(documented.subtracting(served).sorted()), served only: \(served.subtracting(documented).sorted())"
            )
            #expect(served.count >= 5)
            #expect(!served.contains { $0.path.contains("detokenize") }, "the public listener has no detokenize route")
        }
    }

    @Test("Every documented route is routed: no 404 not_found, no 405")
    func documentedRoutesAnswer() async throws {
        let documented = try Self.documentedRoutes()
        #expect(!documented.isEmpty)
        try await withServer { server in
            for route in documented.sorted() {
                let method = try #require(HTTPRequest.Method(route.method))
                let uri = route.path.replacingOccurrences(of: "{token}", with: unknownToken)
                let body = method == .post ? ByteBuffer(string: "{}") : nil
                for auth in [Auth.standard, .none] {
                    let reply = try await server.send(method, uri, auth: auth, body: body)
                    #expect(reply.status != .methodNotAllowed, "\(route): \(reply)")
                    #expect(!(reply.status == .notFound && reply.errorCode == "not_found"), "\(route): \(reply)")
                    #expect(reply.status.code < 500, "\(route): \(reply)")
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

    @Test("The document declares bearer auth, opens /healthz, and defers detokenize to port 8081")
    func documentBasics() throws {
        let text = try Self.document().joined(separator: "\n")
        #expect(text.hasPrefix("openapi: 3.1"))
        #expect(text.contains("scheme: bearer"))
        #expect(text.contains("8081"))
        let health = try #require(text.range(of: "  /healthz:"))
        let next = text[health.upperBound...].range(of: "\n  /")?.lowerBound ?? text.endIndex
        #expect(text[health.upperBound..<next].contains("security: []"))
    }
}
