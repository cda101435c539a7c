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

    /// Every scope the service knows.
    public static let all: [Scope] = [.tokenize, .tokensRead, .tokensDelete, .detokenize, .auditRead, .wallet]

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
    public var createdAt: Date
    public var revokedAt: Date?

    public init(id: String, name: String, scopes: [Scope], purposes: [String], createdAt: Date, revokedAt: Date?) {
        self.id = id
        self.name = name
        self.scopes = scopes
        self.purposes = purposes
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }

    public func allows(_ scope: Scope) -> Bool { revokedAt == nil && scopes.contains(scope) }
}
