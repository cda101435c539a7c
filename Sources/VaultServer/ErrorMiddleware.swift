public import Hummingbird
import Logging

/// Turns every error into the API's error envelope and logs each request in one structured
/// line. It logs the route template (`/v1/tokens/{token}`), never the raw path, headers or
/// body, so nothing a client sent by mistake (a PAN in a URL) reaches the log.
public struct ErrorMiddleware: RouterMiddleware {
    public typealias Context = VaultRequestContext

    public init() {}

    public func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let start = ContinuousClock.now
        let status: HTTPResponse.Status
        let response: Response
        do {
            response = try await next(request, context)
            status = response.status
        } catch {
            let apiError = APIError.from(error) ?? .internalError
            if apiError.status.code >= 500 {
                // The type name only: error descriptions from lower layers may hold values.
                context.logger.error("request failed", metadata: ["error_type": "\(type(of: error))"])
            }
            status = apiError.status
            response = try apiError.response(from: request, context: context)
        }
        let elapsed = ContinuousClock.now - start
        context.logger.debug(
            "request",
            metadata: [
                "method": "\(request.method.rawValue)", "route": "\(context.endpointPath ?? "unmatched")",
                "status": "\(status.code)",
                "ms": "\(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000)",
            ])
        return response
    }
}
