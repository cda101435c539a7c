/// A request to tokenize one card.
public struct TokenizeRequest: Sendable {
    public var card: CardInput
    public var format: TokenFormat
    /// Return the existing token of the same PAN and format, if the same principal created it,
    /// instead of a new one.
    public var dedupe: Bool

    public init(card: CardInput, format: TokenFormat = .opaque, dedupe: Bool = false) {
        self.card = card
        self.format = format
        self.dedupe = dedupe
    }
}

/// The outcome of tokenizing one card.
public struct TokenizeResult: Sendable, Hashable {
    public var metadata: CardMetadata
    /// `false` when `dedupe` returned a token that already existed.
    public var created: Bool

    public init(metadata: CardMetadata, created: Bool) {
        self.metadata = metadata
        self.created = created
    }
}

/// What a caller may ask of the vault: tokens in, metadata out, never a PAN. Every call names
/// the ``Principal`` it acts for: tokens belong to its tenant, dedupe answers only the token's
/// creator, and fingerprints are derived for the principal.
public protocol Tokenizing: Sendable {
    /// Tokenizes one card; returns only after the record is durably committed.
    func tokenize(_ request: TokenizeRequest, by principal: Principal, origin: String) async throws -> TokenizeResult
    /// Tokenizes many cards in one commit; a result per request, in order. One failed item
    /// does not fail the others; a thrown error means nothing was committed.
    func tokenize(
        batch requests: [TokenizeRequest], by principal: Principal, origin: String
    ) async throws -> [Result<TokenizeResult, any Error>]
    /// The metadata of a token of `principal`'s tenant.
    func metadata(of token: Token, for principal: Principal) async throws -> CardMetadata
    /// Deletes a token of `principal`'s tenant and its ciphertexts; it no longer resolves afterwards.
    func delete(_ token: Token, by principal: Principal) async throws
}
