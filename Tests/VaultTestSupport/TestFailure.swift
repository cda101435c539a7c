/// A failure of a test's own harness: a binary missing, a server that did not start, output a
/// helper cannot read.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}
