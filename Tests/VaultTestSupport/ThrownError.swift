public import Testing

/// Runs `body`, which must throw an `E`; returns it, or `nil` (recording an issue at
/// `sourceLocation`) if `body` returned or threw something else. What `body` returned is not
/// printed: it may hold card data.
public func thrownError<E: Error, R>(
    _ type: E.Type, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> R
) async -> E? {
    do {
        _ = try await body()
        Issue.record("expected \(E.self), got a \(R.self)", sourceLocation: sourceLocation)
        return nil
    } catch let error as E {
        return error
    } catch {
        Issue.record("expected \(E.self), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
