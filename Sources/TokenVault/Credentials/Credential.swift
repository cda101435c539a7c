public import CardTokens
public import Foundation

/// What a credential may do. Scopes are checked per route; see README "Credentials".
public struct Scope: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let tokenize = Scope(rawValue: "tokenize")
    public static let tokensRead = Scope(rawValue: "tokens:read")
    public static let tokensDelete = Scope(rawValue: "tokens:delete")
    public static let detokenize = Scope(rawValue: "detokenize")
    public static let auditRead = Scope(rawValue: "audit:read")
    public static let wallet = Scope(rawValue: "wallet")
    /// The card network's messages about issued cards (network listener).
    public static let network = Scope(rawValue: "network")

    /// Every scope the service knows.
    public static let all: [Scope] = [
        .tokenize, .tokensRead, .tokensDelete, .detokenize, .auditRead, .wallet, .network,
    ]

    public var description: String { rawValue }
}

/// An API key as the vault knows it: never its secret, which is shown once and stored only as
/// a keyed hash.
public struct Credential: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    public var scopes: [Scope]
    /// The purposes a `detokenize` key may name.
    public var purposes: [String]
    /// The purposes under which it may reveal a full PAN; under the others, masked only.
    public var panPurposes: [String]
    /// The purposes under which a full reveal of a card this vault issued includes its CVV
    /// (grant `cardholder_reveal:cvv`, the only purpose that may have it); each is in
    /// ``panPurposes`` too.
    public var cvvPurposes: [String]
    /// The tenant its tokens belong to; it sees no other tenant's tokens.
    public var tenant: String
    public var createdAt: Date
    public var revokedAt: Date?

    public init(
        id: String, name: String, scopes: [Scope], purposes: [String], panPurposes: [String] = [],
        cvvPurposes: [String] = [], tenant: String = Principal.defaultTenant, createdAt: Date, revokedAt: Date?
    ) {
        self.id = id
        self.name = name
        self.scopes = scopes
        self.purposes = purposes
        self.panPurposes = panPurposes
        self.cvvPurposes = cvvPurposes
        self.tenant = tenant
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }

    /// Whether the key may act under `scope`. A key that joins `network` with other scopes (one
    /// made before ``CredentialService`` refused them) may do nothing: re-issue it as two keys.
    public func allows(_ scope: Scope) -> Bool {
        revokedAt == nil && scopes.contains(scope) && !(scopes.contains(.network) && scopes.count > 1)
    }

    /// Whether it may reveal full PANs under `purpose`.
    public func mayRevealPAN(for purpose: String) -> Bool { panPurposes.contains(purpose) }

    /// Whether a full reveal under `purpose` includes the CVVs of cards this vault issued.
    public func mayRevealCVV(for purpose: String) -> Bool { cvvPurposes.contains(purpose) }

    /// Who this key is to the vault: its tokens, dedupe and fingerprints.
    public var principal: Principal { .apiKey(id, tenant: tenant) }

    /// The purposes as stored and as the CLI shows them: `settlement:pan`, `chargeback:masked`,
    /// `cardholder_reveal:cvv`.
    public var purposeGrants: [String] {
        purposes.map { "\($0):\(cvvPurposes.contains($0) ? "cvv" : panPurposes.contains($0) ? "pan" : "masked")" }
    }
}
