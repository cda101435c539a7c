import Foundation
import HTTPTypes
import NIOCore
import Testing
import TokenVault
import VaultTestSupport

/// Who may call what: 401 without a valid key, 403 without the route's scope.
@Suite("Authentication and scopes")
struct AuthenticationTests {
    /// A request to one protected route, with a body that would succeed.
    struct ProtectedRoute: Sendable, CustomTestStringConvertible {
        var method: HTTPRequest.Method
        var path: String
        var body: String?
        var scope: Scope

        var testDescription: String { "\(method) \(path)" }

        static let card = #"{"pan": "4111111111111111", "exp_month": 12, "exp_year": 2031, "cvv": "123"}"#

        static let all: [ProtectedRoute] = [
            ProtectedRoute(method: .post, path: "/v1/tokens", body: card, scope: .tokenize),
            ProtectedRoute(method: .post, path: "/v1/tokens/batch", body: #"{"cards": [\#(card)]}"#, scope: .tokenize),
            ProtectedRoute(method: .get, path: "/v1/tokens/\(unknownToken)", body: nil, scope: .tokensRead),
            ProtectedRoute(method: .delete, path: "/v1/tokens/\(unknownToken)", body: nil, scope: .tokensDelete),
        ]

        func send(to server: TestServer, auth: Auth) async throws -> Reply {
            try await server.send(method, path, auth: auth, body: body.map { ByteBuffer(string: $0) })
        }
    }

    /// Checks a 401 `unauthenticated` reply that leaks nothing.
    static func expectUnauthenticated(_ reply: Reply, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(reply.status == .unauthorized, "\(reply)", sourceLocation: sourceLocation)
        #expect(reply.errorCode == "unauthenticated", sourceLocation: sourceLocation)
        // RFC 9110 §11.6.1: a 401 carries a challenge.
        #expect(reply.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true, sourceLocation: sourceLocation)
        #expect(!reply.contains("4111111111111111"), sourceLocation: sourceLocation)
    }

    @Test("No Authorization header: 401 unauthenticated", arguments: ProtectedRoute.all)
    func missing(route: ProtectedRoute) async throws {
        try await withServer { server in
            Self.expectUnauthenticated(try await route.send(to: server, auth: .none))
        }
    }

    @Test("A wrong, malformed or non-bearer key: 401 unauthenticated", arguments: ProtectedRoute.all)
    func wrongKey(route: ProtectedRoute) async throws {
        try await withServer { server in
            // Same id, different secret part.
            let parts = server.key.split(separator: "_")
            let forged = "vk_\(parts[1])_" + String(repeating: "A", count: 43)
            let attempts: [Auth] = [
                .bearer(forged), .bearer("vk_0123456789abcdef_" + String(repeating: "B", count: 43)),
                .bearer("garbage"), .bearer(""), .header(server.key), .header("Basic dXNlcjpwYXNz"),
                .header("Bearer"), .bearer(server.key + "x"),
            ]
            for auth in attempts {
                Self.expectUnauthenticated(try await route.send(to: server, auth: auth))
            }
        }
    }

    @Test("A revoked key: 401 unauthenticated", arguments: ProtectedRoute.all)
    func revoked(route: ProtectedRoute) async throws {
        try await withServer { server in
            let (credential, secret) = try await server.key(scopes: [route.scope])
            let before = try await route.send(to: server, auth: .bearer(secret))
            #expect(before.status != .unauthorized && before.status != .forbidden, "\(before)")
            try await server.vault.credentials.revoke(id: credential.id)
            Self.expectUnauthenticated(try await route.send(to: server, auth: .bearer(secret)))
        }
    }

    @Test("A revocation made by another process takes effect after a reload", arguments: ProtectedRoute.all)
    func revokedElsewhere(route: ProtectedRoute) async throws {
        try await withServer { server in
            let (credential, secret) = try await server.key(scopes: [route.scope])
            _ = try await route.send(to: server, auth: .bearer(secret))
            // As `vault credentials revoke` does it, from its own process: this server's cache
            // still holds the key until it reloads (the maintenance service does every second).
            let other = try await Vault.open(paths: server.vault.paths, logger: TestLog.capturing().0)
            try await other.credentials.revoke(id: credential.id)
            try await server.vault.credentials.reload()
            Self.expectUnauthenticated(try await route.send(to: server, auth: .bearer(secret)))
        }
    }

    @Test("A key without the route's scope: 403 forbidden", arguments: ProtectedRoute.all)
    func wrongScope(route: ProtectedRoute) async throws {
        try await withServer { server in
            let otherScopes = Scope.all.filter { $0 != route.scope }
            // Each other scope alone, and all of them that may be held together (`network` stands alone).
            for scopes in otherScopes.map({ [$0] }) + [otherScopes.filter { $0 != .network }] {
                let (_, secret) = try await server.key(scopes: scopes)
                let reply = try await route.send(to: server, auth: .bearer(secret))
                #expect(reply.status == .forbidden, "\(scopes): \(reply)")
                #expect(reply.errorCode == "forbidden")
                #expect(reply.errorMessage?.contains(route.scope.rawValue) == true)
                #expect(!reply.contains("4111111111111111"))
            }
        }
    }

    @Test("A key with exactly the route's scope is let through", arguments: ProtectedRoute.all)
    func rightScope(route: ProtectedRoute) async throws {
        try await withServer { server in
            let (_, secret) = try await server.key(scopes: [route.scope])
            let reply = try await route.send(to: server, auth: .bearer(secret))
            switch route.method {
            case .post: #expect(reply.status == (route.path == "/v1/tokens" ? .created : .ok), "\(reply)")
            default: #expect(reply.errorCode == "token_not_found", "\(reply)")
            }
        }
    }

    @Test("The Bearer scheme name is case-insensitive (RFC 9110 §11.1)")
    func schemeCase() async throws {
        try await withServer { server in
            for scheme in ["bearer", "BEARER", "Bearer"] {
                let reply = try await server.send(
                    .get, "/v1/tokens/\(unknownToken)", auth: .header("\(scheme) \(server.key)"))
                #expect(reply.errorCode == "token_not_found", "\(scheme): \(reply)")
            }
        }
    }

    @Test("Authentication comes before body validation: a bad body without a key is 401, not 400")
    func authenticationFirst() async throws {
        try await withServer { server in
            for path in ["/v1/tokens", "/v1/tokens/batch"] {
                Self.expectUnauthenticated(try await server.post(path, text: "{not json", auth: .none))
                Self.expectUnauthenticated(
                    try await server.post(path, text: #"{"pan": "4111111111111112"}"#, auth: .none))
            }
            Self.expectUnauthenticated(try await server.send(.get, "/v1/tokens/not-a-token", auth: .none))
            Self.expectUnauthenticated(try await server.send(.get, "/v1/tokens/4111111111111111", auth: .none))
        }
    }

    @Test("/healthz needs no credential, and a bad one does not hurt")
    func healthOpen() async throws {
        try await withServer { server in
            for auth in [Auth.none, .bearer("garbage"), .header("Basic dXNlcjpwYXNz"), .standard] {
                let reply = try await server.send(.get, "/healthz", auth: auth)
                #expect(reply.status == .ok, "\(reply)")
            }
        }
    }
}
