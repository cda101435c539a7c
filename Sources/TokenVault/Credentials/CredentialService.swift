public import Audit
public import CardTokens
import Foundation
public import Logging
import SQLiteSupport
import Synchronization
import VaultCrypto

/// Creates, lists, revokes and checks API credentials.
///
/// A secret is `vk_<id>_<43 base64url characters>` (256 random bits). The vault stores only
/// `BLAKE2b-256(key: credential key, secret)`; checking a presented secret recomputes that hash
/// and compares it in constant time. Credentials are cached in memory and reloaded every few
/// seconds (``reload()``), so a revocation by the CLI reaches a running server within that time.
///
/// Each row carries a keyed MAC over its scopes, purposes, revocation and secret hash
/// (``CredentialRow/macFields``). A row that fails it was changed without the key: it is refused
/// (as if unknown) and logged by id. A credential once seen revoked stays revoked in this
/// process, whatever the database says later.
public final class CredentialService: Sendable {
    /// A credential as cached: its secret hash and the root version whose key made it.
    private struct Entry {
        var credential: Credential
        var hash: [UInt8]
        var hashVersion: UInt32
    }

    private struct Cache {
        var entries: [String: Entry] = [:]
        /// Ids seen revoked: never un-revoked in this process.
        var revoked: Set<String> = []
        /// Ids whose row was refused, logged once until it verifies again.
        var refused: Set<String> = []
        /// Ids with no row, as of the last reload.
        var unknown: Set<String> = []
    }

    private let store: any CredentialStore
    /// The credential-hash keys of every root version.
    private let keyRing: KeyRing
    private let logger: Logger
    private let cache = Mutex(Cache())

    /// Credentials in `vault.db`; each change appends its record to `audit` in its transaction.
    public convenience init(
        database: VaultDatabase, keyRing: KeyRing, audit: SQLiteAuditLog,
        logger: Logger = Logger(label: "vault.credentials")
    ) {
        self.init(
            store: SQLiteCredentialStore(database: database, keyRing: keyRing, audit: audit), keyRing: keyRing,
            logger: logger)
    }

    init(store: any CredentialStore, keyRing: KeyRing, logger: Logger = Logger(label: "vault.credentials")) {
        self.store = store
        self.keyRing = keyRing
        self.logger = logger
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
        // The card network's key answers for every tenant's issued cards; joined with another
        // scope it would let one party both spend cards and read or reveal them.
        if scopes.contains(.network), scopes.contains(where: { $0 != .network }) {
            throw VaultError(.invalidArgument, "scope network cannot be combined with other scopes")
        }
        guard Principal.isValidTenant(tenant) else {
            throw VaultError(.invalidArgument, "tenant must be 1 to 64 of a-z 0-9 _ -, starting with a letter")
        }
        let grants = try purposes.map(Self.grant)
        let purposes = grants.map(\.purpose)
        let panPurposes = grants.filter { $0.level != .masked }.map(\.purpose)
        let cvvPurposes = grants.filter { $0.level == .cvv }.map(\.purpose)
        if !purposes.isEmpty && !scopes.contains(.detokenize) {
            throw VaultError(.invalidArgument, "--purpose only applies to credentials with scope detokenize")
        }
        // At most 11 digits: an id can never hold a card number (the audit log records
        // presented ids of unknown keys only in that shape).
        var id = Self.randomAlphanumeric(16)
        while !Self.isIssuableID(id) { id = Self.randomAlphanumeric(16) }
        // The random part lives in guarded memory, wiped on release (not in a plain array).
        let secret = "vk_\(id)_" + SecretBytes(randomCount: 32).withUnsafeBytes { TokenGenerator.base64URL($0) }
        let credential = Credential(
            id: id, name: name, scopes: Array(Set(scopes)).sorted { $0.rawValue < $1.rawValue },
            purposes: Array(Set(purposes)).sorted(), panPurposes: Array(Set(panPurposes)).sorted(),
            cvvPurposes: Array(Set(cvvPurposes)).sorted(), tenant: tenant,
            createdAt: Date(), revokedAt: nil)
        let event = AuditEvent(
            actor: actor.name, type: "credential.create", outcome: .success, origin: actor.origin,
            objects: ["credential:\(id)"],
            detail:
                "scopes=\(credential.scopes.map(\.rawValue).joined(separator: ",")) "
                + "purposes=\(credential.purposeGrants.joined(separator: ",")) tenant=\(tenant)"
        )
        let row = try await store.insert(audit: event) { [keyRing, id] rowMAC in
            // Hashed and sealed under the newest root version, read in this transaction.
            let root = keyRing.root
            var row = CredentialRow(
                id: id, name: name, scopes: credential.scopes.map(\.rawValue).joined(separator: " "),
                purposes: credential.purposeGrants.joined(separator: " "),
                secretHash: Self.hash(secret, key: root.credentialKey),
                createdAtMs: credential.createdAt.milliseconds, revokedAtMs: nil, tenant: tenant)
            row.hashVersion = root.version
            return row.sealed(with: rowMAC)
        }
        // As read back: the creation time at the stored (millisecond) precision.
        cache.withLock {
            $0.entries[id] = Entry(credential: row.credential, hash: row.secretHash, hashVersion: row.hashVersion)
            $0.unknown.remove(id)
        }
        return (row.credential, secret)
    }

    /// Every credential, newest last.
    public func list() async throws -> [Credential] {
        try await store.rows().map(\.credential)
    }

    /// Revokes credential `id`; it stops authenticating at once in this process.
    public func revoke(id: String, by actor: KeyManager.Actor = .cli) async throws {
        let event = AuditEvent(
            actor: actor.name, type: "credential.revoke", outcome: .success, origin: actor.origin,
            objects: ["credential:\(id)"])
        try await store.revoke(id: id, audit: event) { stored, rowMAC in
            guard var row = stored, row.revokedAtMs == nil else {
                throw VaultError(.credentialNotFound, "no active credential with id \(id)")
            }
            // Re-sealing an edited row would make its edits genuine.
            guard row.verifies(with: rowMAC) else {
                throw VaultError(
                    .recordCorrupt, "credential \(id) fails its integrity check; it is refused already")
            }
            row.revokedAtMs = Date().milliseconds
            return row.sealed(with: rowMAC)
        }
        cache.withLock {
            $0.entries[id] = nil
            $0.revoked.insert(id)
        }
    }

    /// The credential a presented secret belongs to, or `nil` if it is unknown, wrong, revoked,
    /// or its row fails its integrity check.
    public func authenticate(secret: String) async -> Credential? {
        guard let id = Self.id(ofSecret: secret) else { return nil }
        var (entry, knownUnknown) = cache.withLock {
            ($0.revoked.contains(id) ? nil : $0.entries[id], $0.unknown.contains(id))
        }
        // An id with no row is remembered until the next reload (each second in `vault serve`),
        // so a flood of made-up keys costs no database read each.
        if entry == nil && !knownUnknown {
            databaseLookups.add(1, ordering: .relaxed)
            // A failed read remembers nothing: the id is looked up again next time.
            if let snapshot = try? await store.snapshot(of: id) {
                if snapshot.rows.isEmpty {
                    cache.withLock { cache in
                        if cache.unknown.count >= Self.unknownIDCapacity {
                            cache.unknown.removeAll(keepingCapacity: true)
                        }
                        cache.unknown.insert(id)
                    }
                } else {
                    entry = accept(snapshot)[id]
                }
            }
        }
        guard let entry, entry.credential.revokedAt == nil, let root = keyRing.root(version: entry.hashVersion),
            ConstantTime.equals(Self.hash(secret, key: root.credentialKey), entry.hash)
        else { return nil }
        if entry.hashVersion != keyRing.root.version { await rehash(entry, secret: secret) }
        return entry.credential
    }

    /// Re-hashes a credential that authenticated under an older root version with the newest
    /// one (the only time the vault holds its secret), so that the older root key stops being
    /// needed (docs/CRYPTO.md §13.9). A failure leaves the old hash, which still works.
    private func rehash(_ entry: Entry, secret: String) async {
        let id = entry.credential.id
        do {
            // Only a row that still verifies and still holds the hash the secret was checked against.
            let updated = try await store.replaceHash(id: id) { [keyRing] stored, rowMAC in
                let root = keyRing.root
                guard var row = stored, row.verifies(with: rowMAC), row.hashVersion == entry.hashVersion,
                    ConstantTime.equals(row.secretHash, entry.hash)
                else { return nil }
                row.secretHash = Self.hash(secret, key: root.credentialKey)
                row.hashVersion = root.version
                return row.sealed(with: rowMAC)
            }
            guard let updated else { return }
            cache.withLock {
                guard $0.entries[id] != nil else { return }
                $0.entries[id]?.hash = updated.secretHash
                $0.entries[id]?.hashVersion = updated.hashVersion
            }
            logger.info(
                "credential re-hashed under the newest root key",
                metadata: ["credential": "\(id)", "root_version": "\(updated.hashVersion)"])
        } catch {
            logger.warning("credential re-hash failed; the old hash stays valid", metadata: ["credential": "\(id)"])
        }
    }

    /// How many unknown ids are remembered at most between reloads.
    static let unknownIDCapacity = 10_000
    /// Database reads made by `authenticate` (for tests).
    let databaseLookups = Atomic<Int>(0)

    /// The keyed hash of a secret, over the string's own UTF-8 storage (no copy into an array
    /// that would outlive the call unwiped).
    private static func hash(_ secret: String, key: SecretBytes) -> [UInt8] {
        var secret = secret
        return secret.withUTF8 { KeyedHash.hash(UnsafeRawBufferPointer($0), key: key) }
    }

    /// Reloads every credential from the database (picks up revocations made elsewhere).
    public func reload() async throws {
        let accepted = accept(try await store.snapshot())
        cache.withLock {
            $0.entries = accepted
            $0.unknown.removeAll(keepingCapacity: true)
        }
    }

    /// The rows that verify, as cache entries (also added to the cache); refused rows are logged
    /// once, by id. A credential revoked in its row or in the audit log stays revoked.
    private func accept(_ snapshot: CredentialSnapshot) -> [String: Entry] {
        var accepted = [String: Entry]()
        var refused = [String]()
        for row in snapshot.rows {
            guard row.verifies(with: snapshot.rowMAC) else {
                refused.append(row.id)
                continue
            }
            accepted[row.id] = Entry(credential: row.credential, hash: row.secretHash, hashVersion: row.hashVersion)
        }
        let newlyRefused = cache.withLock { cache -> [String] in
            for (id, entry) in accepted where entry.credential.revokedAt != nil { cache.revoked.insert(id) }
            cache.revoked.formUnion(snapshot.revokedInLog)
            for id in cache.revoked { accepted[id] = nil }
            for (id, entry) in accepted { cache.entries[id] = entry }
            let fresh = refused.filter { !cache.refused.contains($0) }
            cache.refused.formUnion(refused)
            cache.refused.subtract(accepted.keys)
            return fresh
        }
        for id in newlyRefused {
            logger.error(
                "credential row refused: it fails its integrity check (changed without the key)",
                metadata: ["credential": "\(id)"])
        }
        return accepted
    }

    /// Parses `name`, `name:masked` or `name:pan`.
    /// What a purpose grant reveals.
    enum GrantLevel: String { case masked, pan, cvv }

    /// The purpose whose grant may be `:cvv`: a cardholder's own issued card.
    public static let cvvPurpose = "cardholder_reveal"

    private static func grant(_ text: String) throws -> (purpose: String, level: GrantLevel) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let purposePattern = /^[a-z][a-z0-9_]{0,63}$/
        guard parts[0].wholeMatch(of: purposePattern) != nil,
            let level = parts.count == 1 ? .masked : GrantLevel(rawValue: parts[1])
        else {
            throw VaultError(
                .invalidArgument,
                "purpose must be lower-case letters, digits and _, optionally followed by :masked, :pan or :cvv")
        }
        guard level != .cvv || parts[0] == cvvPurpose else {
            throw VaultError(.invalidArgument, "only \(cvvPurpose) may be granted :cvv")
        }
        return (parts[0], level)
    }

    /// The id part of `vk_<id>_<secret>`, if the string has exactly that shape: `vk_`, 16 of
    /// `a-z 0-9`, `_`, 43 of base64url. Counted in bytes, not characters (a combining mark makes
    /// one character of any length), and nothing else passes: the id of a refused key goes into
    /// the audit log.
    public static func id(ofSecret secret: String) -> String? {
        let bytes = Array(secret.utf8)
        guard bytes.count == 63, bytes[0..<3] == Array("vk_".utf8)[...], bytes[19] == UInt8(ascii: "_"),
            isWellFormedID(bytes[3..<19]),
            bytes[20...].allSatisfy({
                (97...122).contains($0) || (65...90).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 95
            })
        else { return nil }
        return String(decoding: bytes[3..<19], as: UTF8.self)
    }

    /// Whether `id` is one the vault could have issued: 16 of `a-z 0-9`, at most 11 of them
    /// digits, so an id of an unknown key that holds more (a card number needs 12) is not
    /// recorded as sent.
    public static func isIssuableID(_ id: String) -> Bool {
        isWellFormedID(id.utf8) && id.utf8.count { (48...57).contains($0) } <= 11
    }

    /// 16 bytes of `a-z 0-9`: the shape of an id.
    private static func isWellFormedID(_ bytes: some Collection<UInt8>) -> Bool {
        bytes.count == 16 && bytes.allSatisfy { (97...122).contains($0) || (48...57).contains($0) }
    }

    private static func randomAlphanumeric(_ count: Int) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)
        return String(
            decoding: (0..<count).map { _ in alphabet[Int(SecureRandom.uniform(UInt32(alphabet.count)))] },
            as: UTF8.self)
    }
}
