public import Foundation

/// The wall-clock interval a call ran in. A time the code under test took during the call is
/// checked against it, not against "within N seconds of now": however slowly a loaded machine
/// runs the call, the check holds.
public struct TimeWindow: Sendable, CustomStringConvertible {
    public let start: Date
    public let end: Date

    /// Runs `body` and returns its result with the interval it ran in.
    public static func measuring<R>(_ body: () async throws -> R) async rethrows -> (result: R, window: TimeWindow) {
        let start = Date()
        let result = try await body()
        return (result, TimeWindow(start: start, end: Date()))
    }

    /// Whether `date` can be a time taken during the window plus `offset`, then truncated to
    /// `precision` (1: whole seconds, as RFC 3339 timestamps without a fraction).
    public func contains(_ date: Date, offset: TimeInterval = 0, precision: TimeInterval = 1) -> Bool {
        date > start.addingTimeInterval(offset - precision) && date <= end.addingTimeInterval(offset)
    }

    public var description: String { "\(start) – \(end)" }
}
