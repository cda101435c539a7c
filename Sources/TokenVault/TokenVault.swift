import Audit
@_spi(CardholderData) public import CardTokens
public import Foundation
import GroupCommit
public import Logging
import SQLiteSupport
import VaultCrypto

/// Tokenizes cards: encrypts PAN and CVV under the active data key, stores them, and hands out
/// tokens. It has no function that returns a PAN (DESIGN §2); only `Detokenization` will.
public final class TokenVault: Tokenizing {
    /// How long a CVV is held (default one hour, as VGS and Basis Theory do).
    public let cvvTimeToLive: TimeInterval
    let store: any VaultStore
    let keyRing: KeyRing
    let clock: @Sendable () -> Date
    private let logger: Logger
    private let committer: GroupCommitter<CardWrite, CardWriteOutcome>
    /// Refuses bursts of distinct PANs sharing a BIN and last four (an enumeration).
    public let similarCards: SimilarCardGuard
    /// A numeric token space can be small (a 12-digit PAN leaves two random digits); after this
    /// many collisions in a row the request fails instead of looping.
    static let maximumTokenAttempts = 32

    /// The in-memory keys that seal held CVVs (crypto-shredding; see ``CVVEpochKeys``).
    let cvvKeys: CVVEpochKeys

    /// - Parameter cvvTimeToLive: how long a CVV is held. CVVs are sealed under keys that live
    ///   only in this object's memory, so they do not outlive it (nor a restart).
    public convenience init(
        store: any VaultStore, keyRing: KeyRing, cvvTimeToLive: TimeInterval = 3600,
        similarCards: SimilarCardGuard = SimilarCardGuard(), logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.init(
            store: store, keyRing: keyRing, cvvTimeToLive: cvvTimeToLive, cvvEpochLength: nil,
            similarCards: similarCards, logger: logger, clock: clock)
    }

    /// - Parameter cvvEpochLength: how long one CVV key seals (a quarter of the TTL if `nil`).
    init(
        store: any VaultStore, keyRing: KeyRing, cvvTimeToLive: TimeInterval, cvvEpochLength: TimeInterval?,
        similarCards: SimilarCardGuard = SimilarCardGuard(), logger: Logger, clock: @escaping @Sendable () -> Date
    ) {
        self.store = store
        self.keyRing = keyRing
        self.cvvTimeToLive = cvvTimeToLive
        self.cvvKeys = CVVEpochKeys(timeToLive: cvvTimeToLive, epochLength: cvvEpochLength)
        self.similarCards = similarCards
        self.clock = clock
        self.logger = logger
        self.committer = GroupCommitter { writes in try await store.commit(writes) }
    }

    public func tokenize(
        _ request: TokenizeRequest, by principal: Principal = .system, origin: String = "local"
    ) async throws -> TokenizeResult {
        try await tokenize(batch: [request], by: principal, origin: origin)[0].get()
    }

    /// - Parameters:
    ///   - principal: who tokenizes: the tokens belong to its tenant, dedupe finds only tokens
    ///     it created, and the fingerprints returned are derived for it.
    ///   - origin: the caller's address, for the audit record of a refused burst.
    public func tokenize(
        batch requests: [TokenizeRequest], by principal: Principal = .system, origin: String = "local"
    ) async throws -> [Result<TokenizeResult, any Error>] {
        var results = [Result<TokenizeResult, any Error>?](repeating: nil, count: requests.count)
        var existingTokens = [Int: StoredCard]()
        var attempts = 0
        func fingerprints(under root: RootSubkeys) -> [[UInt8]] {
            requests.map { request in
                request.card.withPANDigits {
                    KeyedHash.hash(UnsafeRawBufferPointer($0), key: root.fingerprintKey, outputByteCount: 16)
                }
            }
        }
        var root = keyRing.root
        var internalFingerprints = fingerprints(under: root)
        var pending = try await admitSimilarCards(
            requests, fingerprints: internalFingerprints, principal: principal, origin: origin, results: &results)
        while !pending.isEmpty {
            attempts += 1
            // The data key is read before the root key in `prepare`'s order of events: a root
            // rotation also rotates the data key, so writes made under a root this call has not
            // seen yet are refused as stale and redone here under the new root.
            let (dataVersion, dataKey) = keyRing.active
            if keyRing.root.version != root.version {
                root = keyRing.root
                internalFingerprints = fingerprints(under: root)
            }
            let writes = prepare(
                pending.map { (requests[$0], internalFingerprints[$0], existingTokens[$0]) }, principal: principal,
                dataKey: (dataVersion, dataKey), root: root)
            let outcomes = try await committer.submit(writes)
            var retry = [Int]()
            if outcomes.contains(where: { if case .staleKey = $0 { true } else { false } }) {
                try await refreshKeys()
            }
            for (index, (write, outcome)) in zip(pending, zip(writes, outcomes)) {
                switch outcome {
                case .stored:
                    var metadata =
                        existingTokens[index].map { callerMetadata($0, for: principal) }
                        ?? write.card.metadata
                    metadata.cvvExpiresAt = write.cvv?.expiresAt ?? metadata.cvvExpiresAt
                    results[index] = .success(TokenizeResult(metadata: metadata, created: write.mode == .insert))
                case .existing(let card):
                    let card = callerCard(card, for: principal)
                    if card.metadata.expMonth != requests[index].card.expMonth
                        || card.metadata.expYear != requests[index].card.expYear
                    {
                        // Another expiry is another card issue: refused rather than answered
                        // with the old expiry, or a new CVV bound to a card it does not fit.
                        results[index] = .failure(
                            VaultError(
                                .dedupeExpiryMismatch,
                                "this card is already tokenized with another expiry; tokenize it without dedupe"))
                    } else if requests[index].card.hasCVV {
                        // Keep the CVV that came with this request, bound to the existing token.
                        existingTokens[index] = card
                        retry.append(index)
                    } else {
                        results[index] = .success(TokenizeResult(metadata: card.metadata, created: false))
                    }
                case .tokenTaken, .missing, .fingerprintTaken:
                    existingTokens[index] = nil
                    retry.append(index)
                case .staleKey:
                    retry.append(index)
                }
            }
            if attempts >= Self.maximumTokenAttempts {
                for index in retry {
                    // Only numeric tokens collide; anything else retried this often met a key
                    // rotation on every attempt.
                    results[index] = .failure(
                        requests[index].format == .numeric
                            ? VaultError(
                                .tokenSpaceExhausted,
                                "no free numeric token for this BIN and last four; use format opaque")
                            : VaultError(.keyVersionActive, "the active key kept changing; retry the request"))
                }
                break
            }
            pending = retry
        }
        let created = results.count { if case .success(let result)? = $0 { result.created } else { false } }
        logger.debug("tokenized", metadata: ["requests": "\(requests.count)", "created": "\(created)"])
        return results.map { $0! }
    }

    /// Runs the batch past the similar-card guard: refused cards get their failure in
    /// `results`, and the first refusal of a burst is audited. Returns the admitted indices.
    private func admitSimilarCards(
        _ requests: [TokenizeRequest], fingerprints: [[UInt8]], principal: Principal, origin: String,
        results: inout [Result<TokenizeResult, any Error>?]
    ) async throws -> [Int] {
        let decisions = similarCards.admit(
            principal: principal.description,
            cards: requests.indices.lazy.map { index in
                (bin: requests[index].card.bin, last4: requests[index].card.last4, fingerprint: fingerprints[index])
            }, now: clock())
        var admitted = [Int]()
        admitted.reserveCapacity(requests.count)
        for (index, decision) in decisions.enumerated() {
            guard case .refused(let report, let distinct) = decision else {
                admitted.append(index)
                continue
            }
            results[index] = .failure(
                VaultError(
                    .similarCardsLimit,
                    "too many different cards with this BIN and last four from this API key; try again later"))
            guard report else { continue }
            let card = requests[index].card
            logger.warning(
                "tokenize refused: a burst of distinct cards sharing a BIN and last four",
                metadata: ["principal": "\(principal)", "bin": "\(card.bin)", "last4": "\(card.last4)"])
            try await store.appendAudit(
                AuditEvent(
                    actor: principal.auditActor, type: "tokenize.similar_cards", time: clock(), outcome: .denied,
                    origin: origin, objects: ["tenant:\(principal.tenant)"],
                    detail: "bin=\(card.bin) last4=\(card.last4) distinct=\(distinct) limit=\(similarCards.limit)"))
        }
        return admitted
    }

    /// A stored card as `principal` may see it: the fingerprint derived for it.
    func callerCard(_ card: StoredCard, for principal: Principal) -> StoredCard {
        var card = card
        card.metadata = callerMetadata(card, for: principal)
        return card
    }

    func callerMetadata(_ card: StoredCard, for principal: Principal) -> CardMetadata {
        var metadata = card.metadata
        metadata.fingerprint = callerFingerprint(
            card.fingerprint, version: card.fingerprintVersion, createdBy: card.createdBy, for: principal)
        metadata.fingerprintVersion = card.fingerprintVersion
        // A CVV row whose epoch key this process does not hold (sealed before a restart, or by
        // another process) can never be used, so it is not shown as held.
        if let epoch = card.cvvEpoch, !cvvKeys.holds(epoch, at: clock()) { metadata.cvvExpiresAt = nil }
        return metadata
    }

    /// The fingerprint `principal` sees for a card that `createdBy` tokenized (docs/CRYPTO.md §8.1).
    ///
    /// The creator is in it so that no caller can match a token it made for a PAN of its choice
    /// against someone else's token: a key holding `tokenize` and `tokens:read` would otherwise
    /// tokenize candidates and compare their fingerprints with a victim token's.
    func callerFingerprint(
        _ internalFingerprint: [UInt8], version: UInt32, createdBy: String, for principal: Principal
    ) -> String {
        Self.callerFingerprint(
            internalFingerprint, tenant: principal.tenant, reader: principal.name, creator: createdBy,
            key: (keyRing.root(version: version) ?? keyRing.root).callerFingerprintKey)
    }

    /// BLAKE2b-128 keyed with the caller-fingerprint key over
    /// `u8 len ‖ tenant ‖ u8 len ‖ reader ‖ u8 len ‖ creator ‖ internal fingerprint`, in hex.
    static func callerFingerprint(
        _ internalFingerprint: [UInt8], tenant: String, reader: String, creator: String, key: SecretBytes
    ) -> String {
        CallerFingerprinter(tenant: tenant, reader: reader, creator: creator, key: key).fingerprint(
            internalFingerprint)
    }

    /// ``callerFingerprint(_:tenant:reader:creator:key:)`` for many cards of one tenant, reader
    /// and creator: the message's prefix is built once, and each card costs one hash over a
    /// stack buffer and one string.
    struct CallerFingerprinter {
        /// `u8 len ‖ tenant ‖ u8 len ‖ reader ‖ u8 len ‖ creator`.
        private let prefix: [UInt8]
        private let key: SecretBytes

        init(tenant: String, reader: String, creator: String, key: SecretBytes) {
            var prefix = [UInt8]()
            prefix.reserveCapacity(3 + tenant.utf8.count + reader.utf8.count + creator.utf8.count)
            prefix.append(UInt8(tenant.utf8.count))
            prefix.append(contentsOf: tenant.utf8)
            prefix.append(UInt8(reader.utf8.count))
            prefix.append(contentsOf: reader.utf8)
            prefix.append(UInt8(creator.utf8.count))
            prefix.append(contentsOf: creator.utf8)
            self.prefix = prefix
            self.key = key
        }

        func fingerprint(_ internalFingerprint: [UInt8]) -> String {
            let byteCount = prefix.count + internalFingerprint.count
            return withUnsafeTemporaryAllocation(byteCount: byteCount + 16, alignment: 1) { buffer in
                let message = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<byteCount])
                let output = UnsafeMutableRawBufferPointer(rebasing: buffer[byteCount...])
                prefix.withUnsafeBytes { message.copyMemory(from: $0) }
                internalFingerprint.withUnsafeBytes {
                    UnsafeMutableRawBufferPointer(rebasing: message[prefix.count...]).copyMemory(from: $0)
                }
                KeyedHash.hash(UnsafeRawBufferPointer(message), key: key, into: output)
                return Hex.encode(UnsafeRawBufferPointer(output))
            }
        }
    }

    /// Builds encrypted writes. All crypto happens here, outside the database transaction, with
    /// one random pool per call so a batch costs one `getrandom` call.
    func prepare(
        _ items: [(request: TokenizeRequest, fingerprint: [UInt8], existing: StoredCard?)], principal: Principal,
        dataKey: (version: UInt32, key: SecretBytes), root: RootSubkeys
    ) -> [CardWrite] {
        // Whole milliseconds, as stored, so the metadata returned equals the metadata read back.
        let now = Date(milliseconds: clock().milliseconds)
        let (version, key) = dataKey
        // Dedupe also looks under older root versions until rewrap has re-fingerprinted every record.
        let olderRoots =
            items.contains { $0.request.dedupe }
            ? keyRing.olderFingerprintRoots.filter { $0.version != root.version } : []
        let perItem = SecretBox.nonceByteCount * 2 + TokenGenerator.randomBytesPerToken
        var pool = RandomPool(byteCount: perItem * items.count)
        let scratch = SecretBytes(zeroedCount: RecordEnvelope.maximumPlaintextByteCount, protection: .wipedOnRelease)
        // The principal creates these cards and reads their fingerprints (CRYPTO.md §8.1).
        let fingerprinter = CallerFingerprinter(
            tenant: principal.tenant, reader: principal.name, creator: principal.name,
            key: root.callerFingerprintKey)
        return items.map { request, fingerprint, existing in
            let card = request.card
            return card.withPANDigits { pan -> CardWrite in
                let token: Token
                if let existing {
                    token = existing.metadata.token
                } else if request.format == .numeric {
                    token = TokenGenerator.numeric(panDigits: pan, pool: &pool)
                } else {
                    token = TokenGenerator.opaque(pool: &pool, milliseconds: now.milliseconds)
                }
                let ciphertext = scratch.withUnsafeMutableBytes { buffer in
                    let count = RecordEnvelope.writePlaintext(
                        kind: .card, token: token.rawValue, data: pan, expMonth: card.expMonth, expYear: card.expYear,
                        into: buffer)
                    return pool.take(SecretBox.nonceByteCount) { nonce in
                        RecordEnvelope.seal(
                            UnsafeRawBufferPointer(rebasing: buffer[0..<count]), version: version, key: key,
                            nonce: nonce)
                    }
                }
                let cvv = card.withCVVDigits { digits -> CVVWrite? in
                    guard let digits else { return nil }
                    // Under an epoch key held only in memory, not a data key: see CVVEpochKeys.
                    let (epoch, cvvKey) = cvvKeys.sealingKey(at: now)
                    let sealed = scratch.withUnsafeMutableBytes { buffer in
                        let count = RecordEnvelope.writePlaintext(
                            kind: .cvv, token: token.rawValue, data: digits, into: buffer)
                        return pool.take(SecretBox.nonceByteCount) { nonce in
                            RecordEnvelope.sealCVV(
                                UnsafeRawBufferPointer(rebasing: buffer[0..<count]), epoch: epoch, key: cvvKey,
                                nonce: nonce)
                        }
                    }
                    return CVVWrite(epoch: epoch, ciphertext: sealed, expiresAt: now + cvvTimeToLive)
                }
                var metadata = CardMetadata(
                    token: token, format: request.format, bin: card.bin, last4: card.last4, brand: card.brand,
                    expMonth: card.expMonth, expYear: card.expYear,
                    fingerprint: fingerprinter.fingerprint(fingerprint),
                    createdAt: now, cvvExpiresAt: nil)
                metadata.fingerprintVersion = root.version
                let dedupe = request.dedupe && existing == nil
                return CardWrite(
                    mode: existing == nil ? .insert : .cvvOnly,
                    card: StoredCard(
                        metadata: metadata, keyVersion: version, ciphertext: ciphertext, fingerprint: fingerprint,
                        fingerprintVersion: root.version, tenant: principal.tenant, createdBy: principal.name),
                    dedupe: dedupe,
                    olderFingerprints: dedupe
                        ? olderRoots.map {
                            (
                                $0.version,
                                KeyedHash.hash(UnsafeRawBufferPointer(pan), key: $0.fingerprintKey, outputByteCount: 16)
                            )
                        } : [],
                    cvv: cvv)
            }
        }
    }

    /// Reloads the key ring after the store refused a write under a rotated-out key.
    func refreshKeys() async throws {
        guard let ring = try await store.keyRing() else {
            throw VaultError(.notInitialized, "the vault has no key ring")
        }
        try keyRing.reload(ring.dataKeys, roots: ring.roots)
    }

    /// The root-key version new fingerprints are made under (docs/CRYPTO.md §13.9).
    public var fingerprintVersion: UInt32 { keyRing.root.version }

    /// The metadata of `token` as `principal` sees it; a token of another tenant is not found.
    public func metadata(of token: Token, for principal: Principal = .system) async throws -> CardMetadata {
        guard let card = try await store.card(token, now: clock()), card.tenant == principal.tenant else {
            throw VaultError(.tokenNotFound, "no such token")
        }
        if keyRing.root(version: card.fingerprintVersion) == nil {
            // Re-fingerprinted under a root version another process added within the last second:
            // take it in rather than answer a fingerprint under the wrong key.
            try await refreshKeys()
            guard keyRing.root(version: card.fingerprintVersion) != nil else {
                throw VaultError(
                    .recordCorrupt, "the record of token \(token) names a root key version the vault lacks")
            }
        }
        return callerMetadata(card, for: principal)
    }

    /// Deletes `token` if it belongs to `principal`'s tenant. The rows are zeroed in `vault.db`
    /// (`secure_delete`); the copies in `vault.db-wal` go at the next coalesced checkpoint
    /// (``VaultDatabase/scrubIfNeeded()``).
    public func delete(_ token: Token, by principal: Principal = .system) async throws {
        guard try await store.delete(token, tenant: principal.tenant, at: clock()) else {
            throw VaultError(.tokenNotFound, "no such token")
        }
        logger.info("token deleted", metadata: ["token": "\(token)"])
    }

    /// Deletes CVVs past their time (PCI DSS 3.3.1.2) and destroys the CVV keys whose CVVs have
    /// all expired, so that no copy of those CVVs opens any more; returns how many rows went.
    @discardableResult
    public func purgeExpiredCVVs() async throws -> Int {
        let now = clock()
        let purged = try await store.purgeExpiredCVVs(now: now)
        let destroyed = cvvKeys.destroyExpired(at: now)
        if purged > 0 || destroyed > 0 {
            logger.info("expired CVVs purged", metadata: ["count": "\(purged)", "keys_destroyed": "\(destroyed)"])
        }
        return purged
    }

    /// Checks that the record of `token` opens under its key and is bound to it, without
    /// returning anything of its content: for integrity checks and tests.
    public func verifyRecord(_ token: Token) async throws {
        guard let card = try await store.card(token, now: clock()) else {
            throw VaultError(.tokenNotFound, "no such token")
        }
        let scratch = SecretBytes(zeroedCount: RecordEnvelope.maximumPlaintextByteCount)
        try Self.open(card.ciphertext, kind: .card, token: token.rawValue, keyRing: keyRing, into: scratch)
        scratch.wipe()
    }

    /// Opens an envelope into `scratch` under whichever ring key its header names.
    @discardableResult
    static func open(
        _ envelope: [UInt8], kind: RecordEnvelope.Kind, token: String, keyRing: KeyRing, into scratch: SecretBytes
    ) throws -> Int {
        try envelope.withUnsafeBytes { bytes in
            let version: UInt32
            do {
                version = try RecordEnvelope.keyVersion(of: bytes)
            } catch {
                throw VaultError(.recordCorrupt, "ciphertext for token \(token) is malformed")
            }
            guard let key = keyRing.key(version: version) else {
                throw VaultError(
                    .unknownKeyVersion, "ciphertext for token \(token) names key v\(version), which the ring lacks")
            }
            return try scratch.withUnsafeMutableBytes { buffer in
                try RecordEnvelope.open(bytes, kind: kind, token: token, key: key, into: buffer)
            }
        }
    }
}

extension Principal {
    /// The actor an audit record names: an API key's id, else the principal's name.
    package var auditActor: String { name.hasPrefix("key:") ? String(name.dropFirst(4)) : name }
}
