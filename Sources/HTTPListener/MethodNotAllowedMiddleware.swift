public import Hummingbird

/// Turns the router's 404 for a path that exists under other methods into
/// `405 method_not_allowed` with an `Allow` header (RFC 9110 §15.5.6). Add it after the routes:
/// it reads them once, and Hummingbird applies middleware to the not-found responder whenever
/// it is added (only that path throws the 404 it looks for, so matched routes do not pay for it).
public struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Each route path's segments (`nil` for a parameter) and the methods it has.
    let routes: [(segments: [Substring?], methods: [HTTPRequest.Method])]

    public init(routes: [Router<Context>.RouteDescription]) {
        var byPath = [String: [HTTPRequest.Method]]()
        for route in routes { byPath[route.path.description, default: []].append(route.method) }
        self.routes = byPath.sorted { $0.key < $1.key }.map { path, methods in
            let segments = path.split(separator: "/").map { segment -> Substring? in
                segment.hasPrefix("{") || segment.hasPrefix(":") || segment == "*" ? nil : segment
            }
            return (segments, methods.sorted { $0.rawValue < $1.rawValue })
        }
    }

    /// The methods of the route `path` resolves to, or `nil` when no route matches it. Like
    /// Hummingbird's router, a literal segment wins over a parameter (`/v1/tokens/batch` is the
    /// batch route, not `/v1/tokens/{token}`), so only the most specific matches count.
    public func allowedMethods(path: String) -> [HTTPRequest.Method]? {
        let parts = path.split(separator: "/")
        var best: [Bool]?
        var allowed = Set<HTTPRequest.Method>()
        for route in routes where route.segments.count == parts.count {
            guard zip(route.segments, parts).allSatisfy({ $0 == nil || $0 == $1 }) else { continue }
            let literals = route.segments.map { $0 != nil }
            if let current = best, current.lexicographicallyPrecedes(literals, by: { !$0 && $1 }) == false,
                current != literals
            {
                continue  // less specific than what matched already
            }
            if best != literals { allowed = [] }
            best = literals
            allowed.formUnion(route.methods)
        }
        return allowed.isEmpty ? nil : allowed.sorted { $0.rawValue < $1.rawValue }
    }

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            guard let allowed = allowedMethods(path: request.uri.path), !allowed.contains(request.method) else {
                throw error
            }
            throw MethodNotAllowedError(allowed: allowed)
        }
    }
}

/// `405 method_not_allowed` in the error envelope, with the `Allow` header.
public struct MethodNotAllowedError: Error, HTTPResponseError, Sendable {
    public let allowed: [HTTPRequest.Method]
    public var status: HTTPResponse.Status { .methodNotAllowed }
    public var code: String { "method_not_allowed" }
    public var message: String { "this path allows only " + allowedHeader }
    public var allowedHeader: String { allowed.map(\.rawValue).joined(separator: ", ") }

    public init(allowed: [HTTPRequest.Method]) {
        self.allowed = allowed
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = "{\"error\":{\"code\":\"\(code)\",\"message\":\"\(message)\"}}"
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8", .allow: allowedHeader],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
