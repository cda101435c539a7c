import HTTPTypes
import Testing

/// Finding 19: a path under a method it does not take answered 404 where the API documents
/// `405 method_not_allowed`.
@Suite("405 method_not_allowed")
struct MethodNotAllowedTests {
    static let publicCases: [(method: HTTPRequest.Method, uri: String, allow: String)] = [
        (.put, "/v1/tokens", "POST"), (.get, "/v1/tokens", "POST"), (.get, "/v1/tokens/batch", "POST"),
        (.patch, "/v1/tokens/tok_aaaaaaaaaaaaaaaaaaaaaa", "DELETE, GET"), (.delete, "/healthz", "GET"),
        (.head, "/healthz", "GET"), (.get, "/v1/transfers", "POST"), (.put, "/v1/wallets", "POST"),
        (.delete, "/v1/wallets/wal_x", "GET"), (.delete, "/v1/wallets/wal_x/cards", "GET, POST"),
        (.get, "/v1/wallets/wal_x/top_ups", "POST"), (.post, "/v1/wallets/wal_x/transactions", "GET"),
        (HTTPRequest.Method("PROPFIND")!, "/v1/tokens", "POST"),
    ]

    @Test(
        "Finding 19: every route's path under another method is 405 method_not_allowed with Allow",
        arguments: Transport.allCases)
    func finding19MethodNotAllowed(transport: Transport) async throws {
        try await withServer(transport: transport, wallets: WalletSetup()) { server in
            for (method, uri, allow) in Self.publicCases {
                for auth in [Auth.standard, .none] {
                    let reply = try await server.send(method, uri, auth: auth)
                    #expect(reply.status == .methodNotAllowed, "\(method) \(uri): \(reply)")
                    #expect(reply.headers[.allow] == allow, "\(method) \(uri)")
                    if method != .head {
                        #expect(reply.errorCode == "method_not_allowed", "\(method) \(uri): \(reply)")
                    }
                }
            }
            // A path no route has stays 404.
            for (method, uri) in [(HTTPRequest.Method.get, "/v1/nothing"), (.delete, "/v1/tokens/a/b")] {
                let reply = try await server.send(method, uri)
                #expect(reply.status == .notFound, "\(method) \(uri): \(reply)")
                #expect(reply.errorCode == "not_found")
            }
        }
    }

    @Test("Finding 19: the detokenize listener answers 405 for its own paths")
    func finding19DetokenizeMethodNotAllowed() async throws {
        try await withDetokenizeServer { server in
            for (method, uri, allow) in [
                (HTTPRequest.Method.get, "/v1/detokenize", "POST"), (.post, "/v1/audit", "GET"),
                (.delete, "/healthz", "GET"),
            ] {
                let reply = try await server.send(method, uri, auth: .standard)
                #expect(reply.status == .methodNotAllowed, "\(method) \(uri): \(reply)")
                #expect(reply.headers[.allow] == allow)
                #expect(reply.errorCode == "method_not_allowed")
            }
        }
    }
}
