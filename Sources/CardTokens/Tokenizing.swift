/// A request to tokenize one card.
public struct TokenizeRequest: Sendable {
    public var card: CardInput
    public var format: TokenFormat
    /// Return the existing token of the same PAN and format instead of a new one.
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

/// What the wallet side may ask of the vault: tokens in, metadata out, never a PAN.
public protocol Tokenizing: Sendable {
    /// Tokenizes one card; returns only after the record is durably committed.
    func tokenize(_ request: TokenizeRequest) async throws -> TokenizeResult
    /// Tokenizes many cards in one commit; a result per request, in order. One failed item
    /// does not fail the others; a thrown error means nothing was committed.
    func tokenize(batch requests: [TokenizeRequest]) async throws -> [Result<TokenizeResult, any Error>]
    /// The metadata of a token.
    func metadata(of token: Token) async throws -> CardMetadata
    /// Deletes a token and its ciphertexts; the token no longer resolves afterwards.
    func delete(_ token: Token) async throws
}
