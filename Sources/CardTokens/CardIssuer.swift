/// A request to issue a new card inside the vault.
public struct IssueCardRequest: Sendable, Hashable {
    /// The card expires at the end of the month this many months after the current one, 1 to 60.
    public var expiresInMonths: Int
    /// The format of the card's token.
    public var format: TokenFormat

    public static let defaultExpiresInMonths = 36
    public static let expiresInMonthsRange = 1...60

    public init(expiresInMonths: Int = defaultExpiresInMonths, format: TokenFormat = .opaque) {
        self.expiresInMonths = expiresInMonths
        self.format = format
    }
}

/// What the wallet side may ask of the vault's card issuing: a new card comes back as token
/// metadata only. The PAN is generated and kept inside the vault, and the CVV is derived there
/// when needed (never stored, never returned here).
public protocol CardIssuer: Sendable {
    /// The BIN (6 or 8 digits) new cards are issued under.
    var issuingBIN: String { get }
    /// Issues a card: a random PAN under ``issuingBIN`` that equals no card the vault holds,
    /// tokenized for `principal`'s tenant; returns after the record is durably committed.
    /// - Throws: the vault's `invalid_argument` for `expiresInMonths` out of range.
    func issueCard(_ request: IssueCardRequest, by principal: Principal, origin: String) async throws -> CardMetadata
}
