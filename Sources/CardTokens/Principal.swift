/// Who tokenizes or reads a card, as the vault scopes what it hands out.
///
/// - Tokens belong to the `tenant` of the API key that created them: a key of another tenant
///   finds no such token (not for metadata, delete, wallets or detokenize).
/// - `dedupe: true` returns an existing token only to the `name` that created it, never to
///   another key, so it cannot tell a caller whether someone else tokenized a PAN.
/// - The `fingerprint` a caller sees is derived from the vault's internal fingerprint for the
///   reader and for the token's creator (docs/CRYPTO.md §8.1): equal for the same PAN tokenized
///   by the same key, as one reader sees it; unrelated otherwise, so nothing a key gets for a
///   PAN of its choice can be matched against anyone else's token.
public struct Principal: Sendable, Hashable, CustomStringConvertible {
    /// The tenant tokens of this principal belong to (an API key's `--tenant`).
    public var tenant: String
    /// Who acts within the tenant: `key:<credential id>` for an API key, `wallet` for the wallet
    /// side, `system` for in-process callers (tests, benchmarks).
    public var name: String

    public init(name: String, tenant: String) {
        self.name = name
        self.tenant = tenant
    }

    /// The tenant of keys created without `--tenant`.
    public static let defaultTenant = "default"

    /// An API key.
    public static func apiKey(_ credentialID: String, tenant: String) -> Principal {
        Principal(name: "key:\(credentialID)", tenant: tenant)
    }

    /// The wallet side of `tenant`: one fingerprint scope for everything in `wallet.db`.
    public static func wallet(tenant: String) -> Principal {
        Principal(name: "wallet", tenant: tenant)
    }

    /// In-process callers of the default tenant (tests, benchmarks, tools).
    public static let system = Principal(name: "system", tenant: defaultTenant)

    /// Whether `tenant` is a well-formed tenant name: 1 to 64 of `a-z 0-9 _ -`, starting with a
    /// letter (it is stored beside every token and never holds a card number).
    public static func isValidTenant(_ tenant: String) -> Bool {
        let bytes = Array(tenant.utf8)
        guard (1...64).contains(bytes.count), (97...122).contains(bytes[0]) else { return false }
        return bytes.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 95 || $0 == 45 }
    }

    public var description: String { "\(tenant)/\(name)" }
}
