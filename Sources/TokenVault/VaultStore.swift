public import Audit
public import CardTokens
public import Foundation
public import VaultCrypto

/// A token's encrypted card as detokenization reads it.
public struct StoredCiphertext: Sendable, Hashable {
    public var keyVersion: UInt32
    public var ciphertext: [UInt8]
    /// For a card the vault issued, the card-verification key version (docs/CRYPTO.md §21).
    public var cvkVersion: UInt32?

    public init(keyVersion: UInt32, ciphertext: [UInt8], cvkVersion: UInt32?) {
        self.keyVersion = keyVersion
        self.ciphertext = ciphertext
        self.cvkVersion = cvkVersion
    }
}

/// A card record as the vault stores it: metadata in the clear, PAN and expiry in `ciphertext`.
///
/// `metadata.fingerprint` is empty here: the stored `fingerprint` is the vault's internal one,
/// which never leaves the vault; callers get one derived for them (``TokenVault``).
public struct StoredCard: Sendable, Hashable {
    public var metadata: CardMetadata
    public var keyVersion: UInt32
    public var ciphertext: [UInt8]
    /// The internal fingerprint (docs/CRYPTO.md §8): for dedupe only, never shown.
    public var fingerprint: [UInt8]
    /// The root-key version whose fingerprint key made `fingerprint` (and whose caller-fingerprint
    /// key derives what callers see).
    public var fingerprintVersion: UInt32
    /// The tenant the token belongs to, and the principal that created it.
    public var tenant: String
    public var createdBy: String
    /// The epoch of the unexpired CVV row, if any: the CVV is held only while this process
    /// holds that epoch's key.
    public var cvvEpoch: UInt64?
    /// For a card the vault issued, the card-verification key version its CVV derives under
    /// (docs/CRYPTO.md §21); `nil` for a card tokenized from outside.
    public var cvkVersion: UInt32?

    public init(
        metadata: CardMetadata, keyVersion: UInt32, ciphertext: [UInt8], fingerprint: [UInt8],
        fingerprintVersion: UInt32 = 0, tenant: String, createdBy: String, cvvEpoch: UInt64? = nil,
        cvkVersion: UInt32? = nil
    ) {
        self.metadata = metadata
        self.keyVersion = keyVersion
        self.ciphertext = ciphertext
        self.fingerprint = fingerprint
        self.fingerprintVersion = fingerprintVersion
        self.tenant = tenant
        self.createdBy = createdBy
        self.cvvEpoch = cvvEpoch
        self.cvkVersion = cvkVersion
    }
}

/// A held CVV: encrypted under an in-memory epoch key, bound to its token, and gone at
/// `expiresAt` (PCI DSS 3.3.2).
public struct CVVWrite: Sendable, Hashable {
    /// The epoch whose key sealed it (see `CVVEpochKeys`); stored in `cvvs.epoch`.
    public var epoch: UInt64
    public var ciphertext: [UInt8]
    public var expiresAt: Date
}

/// One write of a tokenize request.
public struct CardWrite: Sendable {
    public enum Mode: Sendable {
        /// Insert a new card record (and its CVV, if any).
        case insert
        /// Only (re)place the CVV of an existing token (a dedupe hit that brought a CVV).
        case cvvOnly
        /// Insert a card the vault issued (its `cvkVersion` set), unless any record, of any
        /// tenant, creator or format, has its PAN: judged by `fingerprint` and
        /// `olderFingerprints` inside the transaction that inserts it.
        case issue
    }

    public var mode: Mode
    public var card: StoredCard
    /// Look for an existing record of the same PAN and format created by the same principal
    /// first, inside the transaction.
    public var dedupe: Bool
    /// With `dedupe`: the PAN's fingerprints under older root-key versions, for records not yet
    /// re-fingerprinted by `vault keys rewrap` (docs/CRYPTO.md §13.9).
    public var olderFingerprints: [(version: UInt32, fingerprint: [UInt8])] = []
    public var cvv: CVVWrite?
    /// Audit records appended in the transaction that stores the write (nothing if it is not stored).
    public var audit: [AuditEvent] = []
}

/// What became of a ``CardWrite``.
public enum CardWriteOutcome: Sendable {
    /// Committed.
    case stored
    /// The token is in use or was used before (a numeric-token collision): make another.
    case tokenTaken
    /// `dedupe` found this existing record; nothing was inserted.
    case existing(StoredCard)
    /// A `cvvOnly` write whose token was deleted meanwhile.
    case missing
    /// An `issue` write whose PAN a stored record already has: draw another PAN.
    case fingerprintTaken
    /// Encrypted under a data key that is no longer the active one (rotated meanwhile):
    /// re-encrypt under the active key. Never stored (PCI DSS 3.7.5: retired keys never encrypt).
    case staleKey
}

/// A card record to re-encrypt under the active key (CVVs are under epoch keys, not data keys).
public struct RewrapItem: Sendable {
    public var token: String
    public var ciphertext: [UInt8]
    /// The root-key version of the record's fingerprint.
    public var fingerprintVersion: UInt32
}

/// A record re-encrypted by rewrap, and its fingerprint recomputed under the active root-key
/// version if it was under an older one.
public struct ResealedRecord: Sendable {
    public var ciphertext: [UInt8]
    public var fingerprint: (version: UInt32, bytes: [UInt8])?
}

/// Storage of the cardholder-data environment. One SQLite implementation today
/// (``SQLiteVaultStore``); the shape fits a PostgreSQL one: every method is one transaction.
public protocol VaultStore: Sendable {
    /// The root-key versions and the data-key rows, or `nil` if the vault has no key ring.
    func keyRing() async throws -> (roots: [RootKeyRow], dataKeys: [DataKeyRow])?
    /// Creates the key ring: the root key and data key version 1.
    func createKeyRing(wrappedRoot: [UInt8], wrappedFirstKey: [UInt8], at: Date, audit: [AuditEvent]) async throws
    /// Commits tokenize writes in one transaction; outcomes in order.
    func commit(_ writes: [CardWrite]) async throws -> [CardWriteOutcome]
    /// The record of `token`, with its CVV expiry, or `nil`.
    func card(_ token: Token, now: Date) async throws -> StoredCard?
    /// The card this vault issued (`cvk_version` set) whose PAN has one of `fingerprints` (each
    /// under its root version), of any tenant, or `nil`: the card network's PAN in, its token out.
    func issuedCard(fingerprints: [(version: UInt32, fingerprint: [UInt8])]) async throws -> StoredCard?
    /// The key versions and ciphertexts of the tokens that exist in `tenant` (for detokenization),
    /// with the card-verification key version of the cards this vault issued.
    func ciphertexts(
        of tokens: [Token], tenant: String
    ) async throws
        -> [Token: StoredCiphertext]
    /// Takes `token`'s held CVV: reads and deletes its row in one write transaction, so of two
    /// concurrent calls only one gets it (PCI DSS 3.3.1.2: used at most once). `nil` if none is
    /// held or its time is up at `now` (an expired one is deleted too).
    func takeCVV(of token: Token, now: Date) async throws -> (epoch: UInt64, ciphertext: [UInt8])?
    /// Deletes `token`'s record and CVV and remembers the token as used; `false` if unknown in
    /// `tenant`.
    func delete(_ token: Token, tenant: String, at: Date) async throws -> Bool
    /// Deletes CVVs whose time is up; returns how many.
    func purgeExpiredCVVs(now: Date) async throws -> Int
    /// Adds `newKey`, wrapped under `master`, as the new active data key and demotes the old one.
    /// Inside its transaction it checks that `master` still opens the root key.
    /// - Throws: ``VaultError`` `master_key_changed` (nothing written) if it does not.
    func rotate(
        at: Date, master: SecretBytes, newKey: SecretBytes, audit: @Sendable (UInt32) -> AuditEvent
    ) async throws -> UInt32
    /// Adds root-key version N+1 (`newRoot`, wrapped under `master`) and, with it, a new active
    /// data key, in one transaction that checks `master` against every stored root version,
    /// verifies every row MAC under the old row key and re-seals each row under the new one, and
    /// opens the audit log's segment under the new audit key (docs/CRYPTO.md §13.9).
    /// - Returns: the new root and data-key versions, and the ids of the unrevoked credentials
    ///   whose rows were re-sealed.
    func rotateRoot(
        at: Date, master: SecretBytes, newRoot: SecretBytes, newDataKey: SecretBytes,
        audit: @Sendable (_ root: UInt32, _ dataKey: UInt32) -> AuditEvent
    ) async throws -> RootRotation
    /// How many card fingerprints and credential hashes each root version still made.
    func rootKeyUse() async throws -> (fingerprints: [UInt32: Int], credentialHashes: [UInt32: Int])
    /// Card records per key version (CVVs are under epoch keys, not data keys).
    func recordCounts() async throws -> [UInt32: Int]
    /// Card records under a version older than `version` (invariant: the active version is the
    /// highest, and every record is under it or an older one), counted up to `atMost` if given.
    func recordsNotUnder(version: UInt32, atMost: Int?) async throws -> Int
    /// Re-encrypts up to `limit` card records under versions older than `version` in one
    /// transaction; returns how many.
    func rewrap(
        to version: UInt32, limit: Int, reseal: @Sendable ([RewrapItem]) throws -> [ResealedRecord]
    ) async throws -> Int
    /// Deletes data key `version` if no card record uses it.
    func retire(version: UInt32, at: Date, audit: AuditEvent) async throws
    /// Removes the copies that deleted or replaced rows leave in the store's files (SQLite: the
    /// WAL is checkpointed into `vault.db`, where `secure_delete` has zeroed them, and truncated
    /// to zero bytes). Tries up to `attempts` times while readers block it; `true` once done.
    func scrub(attempts: Int) async -> Bool
    /// Appends an audit event on its own.
    func appendAudit(_ event: AuditEvent) async throws
    /// The card-verification key rows, oldest first, each checked against its row MAC.
    /// - Throws: ``VaultError`` `record_corrupt` for a row changed without the key.
    func cardVerificationKeys() async throws -> [CardVerificationKeyRow]
    /// The newest card-verification key row; if there is none, first adds version 1 (`newKey`
    /// wrapped under `master`, sealed, audited with `audit`) in a transaction that checks `master`
    /// against every root version. Of concurrent first calls, one adds it and all get it.
    func createCardVerificationKeyIfNone(
        at: Date, master: SecretBytes, newKey: SecretBytes, audit: @Sendable (UInt32) -> AuditEvent
    ) async throws -> CardVerificationKeyRow
    /// Adds the card-verification key version after the newest (`newKey` wrapped under `master`,
    /// sealed, audited), which new cards are issued under from then on; cards issued before keep
    /// theirs, and so their CVVs.
    func rotateCardVerificationKey(
        at: Date, master: SecretBytes, newKey: SecretBytes, audit: @Sendable (UInt32) -> AuditEvent
    ) async throws -> CardVerificationKeyRow
    /// How many cards this vault issued under each card-verification key version.
    func issuedCardCounts() async throws -> [UInt32: Int]
    /// Re-wraps the root key, every non-retired data key and every card-verification key from
    /// `master` to `newMaster`, reading,
    /// checking and writing them in one transaction. `audit` gets the re-wrapped versions.
    /// - Throws: ``VaultError`` `master_key_changed` (nothing written) if `master` no longer opens
    ///   the root key.
    func rewrapKeyRing(
        from master: SecretBytes, to newMaster: SecretBytes, audit: @Sendable ([UInt32]) -> AuditEvent
    ) async throws
}
