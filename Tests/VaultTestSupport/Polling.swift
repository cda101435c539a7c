/// Checks `condition` every `interval` until it holds; returns how long that took, or `nil` if
/// it still did not hold after `limit`.
///
/// For what happens "soon" in another task or process (a reload, a flush). The limit is a
/// generous bound for a loaded machine, not a measure of speed: a check that must be quick
/// belongs in a benchmark, and a wait with no bound at all is left to the suite's `.timeLimit`.
/// - Throws: what `condition` throws, or `CancellationError` if the task is cancelled.
public func eventually(
    within limit: Duration = .seconds(60), every interval: Duration = .milliseconds(100),
    _ condition: () async throws -> Bool
) async throws -> Duration? {
    let clock = ContinuousClock()
    let start = clock.now
    while true {
        if try await condition() { return clock.now - start }
        if clock.now - start > limit { return nil }
        try await Task.sleep(for: interval)
    }
}
