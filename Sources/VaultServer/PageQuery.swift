import Hummingbird

/// The paging parameters of a list route: `limit` (1 to 1,000, default 100) and `after` (the
/// `next_after` of the previous page, default 0).
struct PageQuery {
    var limit: Int
    var after: Int64

    /// - Parameter after: what `after` must be, for the error message.
    /// - Throws: ``APIError`` 400 `invalid_limit` or `invalid_after`.
    init(_ request: Request, after meaning: String) throws {
        let query = request.uri.queryParameters
        limit =
            try query.get("limit").map { value in
                guard let limit = Int(value), (1...1000).contains(limit) else {
                    throw APIError(.badRequest, code: "invalid_limit", message: "limit must be 1 to 1000")
                }
                return limit
            } ?? 100
        after =
            try query.get("after").map { value in
                guard let after = Int64(value), after >= 0 else {
                    throw APIError(.badRequest, code: "invalid_after", message: "after must be \(meaning)")
                }
                return after
            } ?? 0
    }
}
