public import CardTokens

/// How the wallet learns what a token stands for: metadata only, never a PAN. The server adapts
/// the vault to it; tests use an in-memory directory.
public protocol CardDirectory: Sendable {
    /// The metadata of `token` as the wallet side of `tenant` sees it (its fingerprint scoped to
    /// that wallet side), or `nil` when the vault does not hold it in `tenant` (never issued,
    /// deleted, or another tenant's).
    func metadata(of token: Token, tenant: String) async throws -> CardMetadata?
}
