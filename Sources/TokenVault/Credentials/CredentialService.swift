public import Audit
public import CardTokens
import Foundation
import GRDB
import Synchronization
public import VaultCrypto

/// Creates, lists, revokes and checks API credentials.
///
/// A secret is `vk_<id>_<43 base64url characters>` (256 random bits). The vault stores only
/// `BLAKE2b-256(key: credential key, secret)`; checking a presented secret recomputes that hash
/// and compares it in constant time. Credentials are cached in memory and reloaded every few
/// seconds (``reload()``), so a revocation by the CLI reaches a running server within that time.
public final class CredentialService: Sendable {
    private let pool: DatabasePool
    private let hashKey: SecretBytes
    private let audit: SQLiteAuditLog
    private let cache = Mutex<[String: (credential: Credential, hash: [UInt8])]>([:])

    public init(database: VaultDatabase, hashKey: SecretBytes, audit: SQLiteAuditLog) {
        self.pool = database.pool
        self.hashKey = hashKey
        self.audit = audit
    }

    /// Creates a credential and returns it with its secret, which is not stored and cannot be
    /// shown again.
    /// - Parameters:
    ///   - purposes: what a `detokenize` key may name, each `name` or `name:masked` (masked PANs
    ///     only) or `name:pan` (full PANs too).
    ///   - tenant: the tenant its tokens belong to.
    public func create(
        name: String, scopes: [Scope], purposes: [String], tenant: String = Principal.defaultTenant,
        by actor: KeyManager.Actor = .cli
    ) async throws -> (credential: Credential, secret: String) {
        let name = name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.count <= 200 else {
            throw VaultError(.invalidArgument, "name must be 1 to 200 characters")
        }
        guard !scopes.isEmpty else { throw VaultError(.invalidArgument, "give at least one --scope") }
        if let unknown = scopes.first(where: { !Scope.all.contains($0) }) {
            throw VaultError(
                .invalidArgument,
                "unknown scope '\(unknown)'; known scopes: \(Scope.all.map(\.rawValue).joined(separator: ", "))")
        }
        guard Principal.isValidTenant(tenant) else {
            throw VaultError(.invalidArgument, "tenant must be 1 to 64 of a-z 0-9 _ -, starting with a letter")
        }
        let grants = try purposes.map(Self.grant)
        let purposes = grants.map(\.purpose)
        let panPurposes = grants.filter(\.pan).map(\.purpose)
        if !purposes.isEmpty && !scopes.contains(.detokenize) {
            throw VaultError(.invalidArgument, "--purpose only applies to credentials with scope detokenize")
        }
        let id = Self.randomAlphanumeric(16)
        let secret = "vk_\(id)_" + SecureRandom.bytes(32).withUnsafeBytes { TokenGenerator.base64URL($0) }
        let credential = Credential(
            id: id, name: name, scopes: Array(Set(scopes)).sorted { $0.rawValue < $1.rawValue },
            purposes: Array(Set(purposes)).sorted(), panPurposes: Array(Set(panPurposes)).sorted(), tenant: tenant,
            createdAt: Date(), revokedAt: nil)
        let hash = KeyedHash.hash(Array(secret.utf8), key: hashKey)
        let event = AuditEvent(
            actor: actor.name, type: "credential.create", outcome: .success, origin: actor.origin,
            objects: ["credential:\(id)"],
            detail:
                "scopes=\(credential.scopes.map(\.rawValue).joined(separator: ",")) "
                + "purposes=\(credential.purposeGrants.joined(separator: ",")) tenant=\(tenant)"
        )
        try await pool.write { [audit] db in
            try db.execute(
                sql: """
                    INSERT INTO credentials (id, name, scopes, purposes, secret_hash, created_at_ms, tenant)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    id, name, credential.scopes.map(\.rawValue).joined(separator: " "),
                    credential.purposeGrants.joined(separator: " "), Data(hash), credential.createdAt.milliseconds,
                    tenant,
                ])
            try audit.append([event], in: db)
        }
        cache.withLock { $0[id] = (credential, hash) }
        return (credential, secret)
    }

    /// Every credential, newest last.
    public func list() async throws -> [Credential] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM credentials ORDER BY created_at_ms, id").map {
                Self.credential($0).0
            }
        }
    }

    /// Revokes credential `id`; it stops authenticating at once in this process.
    public func revoke(id: String, by actor: KeyManager.Actor = .cli) async throws {
        let event = AuditEvent(
            actor: actor.name, type: "credential.revoke", outcome: .success, origin: actor.origin,
            objects: ["credential:\(id)"])
        try await pool.write { [audit] db in
            try db.execute(
                sql: "UPDATE credentials SET revoked_at_ms = ? WHERE id = ? AND revoked_at_ms IS NULL",
                arguments: [Date().milliseconds, id])
            guard db.changesCount == 1 else {
                throw VaultError(.credentialNotFound, "no active credential with id \(id)")
            }
            try audit.append([event], in: db)
        }
        cache.withLock { _ = $0.removeValue(forKey: id) }
    }

    /// The credential a presented secret belongs to, or `nil` if it is unknown, wrong or revoked.
    public func authenticate(secret: String) async -> Credential? {
        guard let id = Self.id(ofSecret: secret) else { return nil }
        var entry = cache.withLock { $0[id] }
        if entry == nil {
            entry = try? await pool.read { db in
                try Row.fetchOne(db, sql: "SELECT * FROM credentials WHERE id = ?", arguments: [id]).map(
                    Self.credential)
            }
            if let entry { cache.withLock { $0[id] = entry } }
        }
        guard let entry, entry.credential.revokedAt == nil else { return nil }
        let presented = KeyedHash.hash(Array(secret.utf8), key: hashKey)
        return ConstantTime.equals(presented, entry.hash) ? entry.credential : nil
    }

    /// Reloads every credential from the database (picks up revocations made elsewhere).
    public func reload() async throws {
        let all = try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM credentials").map(Self.credential)
        }
        cache.withLock { cache in
            cache = Dictionary(all.map { ($0.credential.id, $0) }, uniquingKeysWith: { $1 })
        }
    }

    private static func credential(_ row: Row) -> (credential: Credential, hash: [UInt8]) {
        let scopes: String = row["scopes"]
        let purposes: String = row["purposes"]
        let revoked: Int64? = row["revoked_at_ms"]
        let hash: Data = row["secret_hash"]
        // Stored as `name:pan` / `name:masked`; anything else grants masked only.
        let grants = purposes.split(separator: " ").map { $0.split(separator: ":", maxSplits: 1) }
        let credential = Credential(
            id: row["id"], name: row["name"], scopes: scopes.split(separator: " ").map { Scope(rawValue: String($0)) },
            purposes: grants.map { String($0[0]) },
            panPurposes: grants.filter { $0.count == 2 && $0[1] == "pan" }.map { String($0[0]) },
            tenant: row["tenant"], createdAt: Date(milliseconds: row["created_at_ms"]),
            revokedAt: revoked.map(Date.init(milliseconds:)))
        return (credential, [UInt8](hash))
    }

    /// Parses `name`, `name:masked` or `name:pan`.
    private static func grant(_ text: String) throws -> (purpose: String, pan: Bool) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let purposePattern = /^[a-z][a-z0-9_]{0,63}$/
        guard parts[0].wholeMatch(of: purposePattern) != nil, parts.count == 1 || ["pan", "masked"].contains(parts[1])
        else {
            throw VaultError(
                .invalidArgument,
                "purpose must be lower-case letters, digits and _, optionally followed by :masked or :pan")
        }
        return (parts[0], parts.count == 2 && parts[1] == "pan")
    }

    /// The id part of `vk_<id>_<secret>`, if the string has exactly that shape: `vk_`, 16 of
    /// `a-z 0-9`, `_`, 43 of base64url. Counted in bytes, not characters (a combining mark makes
    /// one character of any length), and nothing else passes: the id of a refused key goes into
    /// the audit log.
    public static func id(ofSecret secret: String) -> String? {
        let bytes = Array(secret.utf8)
        guard bytes.count == 63, bytes[0..<3] == Array("vk_".utf8)[...], bytes[19] == UInt8(ascii: "_"),
            bytes[3..<19].allSatisfy({ (97...122).contains($0) || (48...57).contains($0) }),
            bytes[20...].allSatisfy({
                (97...122).contains($0) || (65...90).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 95
            })
        else { return nil }
        return String(decoding: bytes[3..<19], as: UTF8.self)
    }

    /// Whether a credential id could be a card number (16 digits that pass the Luhn check):
    /// such an id of an unknown key is not recorded as sent.
    public static func mayBeCardNumber(_ id: String) -> Bool {
        CardNumberDetector.containsLuhnValidRun(id)
    }

    private static func randomAlphanumeric(_ count: Int) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        return String(
            decoding: (0..<count).map { _ in alphabet[Int(SecureRandom.uniform(UInt32(alphabet.count)))] },
            as: UTF8.self)
    }
}
