public import CardTokens

/// How the wallet learns what a token stands for: metadata only, never a PAN. The server adapts
/// the vault to it; tests use an in-memory directory.
public protocol CardDirectory: Sendable {
    /// The metadata of `token` as the wallet side of `tenant` sees it (its fingerprint scoped to
    /// that wallet side), or `nil` when the vault does not hold it in `tenant` (never issued,
    /// deleted, or another tenant's).
    func metadata(of token: Token, tenant: String) async throws -> CardMetadata?
    /// The vault's root-key version that new fingerprints derive from; a saved fingerprint from
    /// an older version is read again by ``WalletService/rescopeCardFingerprints()``.
    var fingerprintVersion: UInt32 { get }
}

extension CardDirectory {
    /// A directory whose fingerprints never change version.
    public var fingerprintVersion: UInt32 { 0 }
}
