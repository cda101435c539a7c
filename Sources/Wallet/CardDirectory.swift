public import CardTokens

/// How the wallet learns what a token stands for: metadata only, never a PAN. The server adapts
/// the vault to it; tests use an in-memory directory.
public protocol CardDirectory: Sendable {
    /// The metadata of `token`, or `nil` when the vault does not hold it (never issued, or deleted).
    func metadata(of token: Token) async throws -> CardMetadata?
}
