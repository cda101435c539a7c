public import Foundation

/// What anyone with `tokens:read` may know about a tokenized card, without detokenization.
/// Holds no PAN and no CVV: BIN and last four are the most PCI DSS 3.4.1 allows to display.
public struct CardMetadata: Sendable, Hashable, Codable {
    public var token: Token
    public var format: TokenFormat
    public var bin: String
    public var last4: String
    public var brand: CardBrand
    public var expMonth: Int
    public var expYear: Int
    /// Keyed BLAKE2b of the PAN under the vault's index key, hex; equal for equal PANs.
    public var fingerprint: String
    public var createdAt: Date
    /// When the CVV held for this card expires, if one is held.
    public var cvvExpiresAt: Date?
    /// The vault's root-key version that `fingerprint` derives from: it changes once, when the
    /// card is re-fingerprinted after a root-key rotation (docs/CRYPTO.md §13.9). Not shown in
    /// API responses; the wallet uses it to know which saved fingerprints to read again.
    public var fingerprintVersion: UInt32?

    public init(
        token: Token, format: TokenFormat, bin: String, last4: String, brand: CardBrand,
        expMonth: Int, expYear: Int, fingerprint: String, createdAt: Date, cvvExpiresAt: Date?
    ) {
        self.token = token
        self.format = format
        self.bin = bin
        self.last4 = last4
        self.brand = brand
        self.expMonth = expMonth
        self.expYear = expYear
        self.fingerprint = fingerprint
        self.createdAt = createdAt
        self.cvvExpiresAt = cvvExpiresAt
    }

    /// Whether a CVV is held now (it is purged at expiry or after use).
    public func cvvHeld(at now: Date = Date()) -> Bool {
        guard let cvvExpiresAt else { return false }
        return cvvExpiresAt > now
    }
}
