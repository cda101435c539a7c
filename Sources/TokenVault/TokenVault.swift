@_spi(CardholderData) public import CardTokens
public import Foundation
import GroupCommit
public import Logging
import VaultCrypto

/// Tokenizes cards: encrypts PAN and CVV under the active data key, stores them, and hands out
/// tokens. It has no function that returns a PAN (DESIGN §2); only `Detokenization` will.
public final class TokenVault: Tokenizing {
    /// How long a CVV is held (default one hour, as VGS and Basis Theory do).
    public let cvvTimeToLive: TimeInterval
    let store: any VaultStore
    let keyRing: KeyRing
    private let clock: @Sendable () -> Date
    private let logger: Logger
    private let committer: GroupCommitter<CardWrite, CardWriteOutcome>
    /// A numeric token space can be small (a 12-digit PAN leaves two random digits); after this
    /// many collisions in a row the request fails instead of looping.
    static let maximumTokenAttempts = 32

    /// The in-memory keys that seal held CVVs (crypto-shredding; see ``CVVEpochKeys``).
    let cvvKeys: CVVEpochKeys

    /// - Parameter cvvTimeToLive: how long a CVV is held. CVVs are sealed under keys that live
    ///   only in this object's memory, so they do not outlive it (nor a restart).
    public convenience init(
        store: any VaultStore, keyRing: KeyRing, cvvTimeToLive: TimeInterval = 3600,
        logger: Logger, clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.init(
            store: store, keyRing: keyRing, cvvTimeToLive: cvvTimeToLive, cvvEpochLength: nil, logger: logger,
            clock: clock)
    }

    /// - Parameter cvvEpochLength: how long one CVV key seals (a quarter of the TTL if `nil`).
    init(
        store: any VaultStore, keyRing: KeyRing, cvvTimeToLive: TimeInterval, cvvEpochLength: TimeInterval?,
        logger: Logger, clock: @escaping @Sendable () -> Date
    ) {
        self.store = store
        self.keyRing = keyRing
        self.cvvTimeToLive = cvvTimeToLive
        self.cvvKeys = CVVEpochKeys(timeToLive: cvvTimeToLive, epochLength: cvvEpochLength)
        self.clock = clock
        self.logger = logger
        self.committer = GroupCommitter { writes in try await store.commit(writes) }
    }

    public func tokenize(_ request: TokenizeRequest) async throws -> TokenizeResult {
        try await tokenize(batch: [request])[0].get()
    }

    public func tokenize(batch requests: [TokenizeRequest]) async throws -> [Result<TokenizeResult, any Error>] {
        var results = [Result<TokenizeResult, any Error>?](repeating: nil, count: requests.count)
        var pending = Array(requests.indices)
        var existingTokens = [Int: StoredCard]()
        var attempts = 0
        while !pending.isEmpty {
            attempts += 1
            let writes = prepare(pending.map { (requests[$0], existingTokens[$0]) })
            let outcomes = try await committer.submit(writes)
            var retry = [Int]()
            if outcomes.contains(where: { if case .staleKey = $0 { true } else { false } }) {
                try await refreshKeys()
            }
            for (index, (write, outcome)) in zip(pending, zip(writes, outcomes)) {
                switch outcome {
                case .stored:
                    var metadata = existingTokens[index].map(visibleMetadata) ?? write.card.metadata
                    metadata.cvvExpiresAt = write.cvv?.expiresAt ?? metadata.cvvExpiresAt
                    results[index] = .success(TokenizeResult(metadata: metadata, created: write.mode == .insert))
                case .existing(let card):
                    if requests[index].card.hasCVV {
                        // Keep the CVV that came with this request, bound to the existing token.
                        existingTokens[index] = card
                        retry.append(index)
                    } else {
                        results[index] = .success(TokenizeResult(metadata: visibleMetadata(card), created: false))
                    }
                case .tokenTaken, .missing:
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

    /// Builds encrypted writes. All crypto happens here, outside the database transaction, with
    /// one random pool per call so a batch costs one `getrandom` call.
    private func prepare(_ items: [(TokenizeRequest, StoredCard?)]) -> [CardWrite] {
        // Whole milliseconds, as stored, so the metadata returned equals the metadata read back.
        let now = Date(milliseconds: clock().milliseconds)
        let (version, key) = keyRing.active
        let perItem = SecretBox.nonceByteCount * 2 + TokenGenerator.randomBytesPerToken
        var pool = RandomPool(byteCount: perItem * items.count)
        let scratch = SecretBytes(zeroedCount: RecordEnvelope.maximumPlaintextByteCount, protection: .wipedOnRelease)
        return items.map { request, existing in
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
                let fingerprint = KeyedHash.hash(
                    UnsafeRawBufferPointer(pan), key: keyRing.fingerprintKey, outputByteCount: 16)
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
                let metadata = CardMetadata(
                    token: token, format: request.format, bin: card.bin, last4: card.last4, brand: card.brand,
                    expMonth: card.expMonth, expYear: card.expYear, fingerprint: Hex.encode(fingerprint),
                    createdAt: now,
                    cvvExpiresAt: nil)
                return CardWrite(
                    mode: existing == nil ? .insert : .cvvOnly,
                    card: StoredCard(metadata: metadata, keyVersion: version, ciphertext: ciphertext),
                    fingerprint: fingerprint, dedupe: request.dedupe && existing == nil, cvv: cvv)
            }
        }
    }

    /// Reloads the key ring after the store refused a write under a rotated-out key.
    private func refreshKeys() async throws {
        guard let ring = try await store.keyRing() else {
            throw VaultError(.notInitialized, "the vault has no key ring")
        }
        try keyRing.reload(ring.dataKeys)
    }

    public func metadata(of token: Token) async throws -> CardMetadata {
        guard let card = try await store.card(token, now: clock()) else {
            throw VaultError(.tokenNotFound, "no such token")
        }
        return visibleMetadata(card)
    }

    /// The metadata of `card` as this process sees it: a CVV row whose epoch key this process
    /// does not hold (sealed before a restart, or by another process) cannot be used, so it is
    /// not shown as held.
    private func visibleMetadata(_ card: StoredCard) -> CardMetadata {
        var metadata = card.metadata
        if let epoch = card.cvvEpoch, !cvvKeys.holds(epoch, at: clock()) { metadata.cvvExpiresAt = nil }
        return metadata
    }

    /// Deletes `token`'s record and CVV. The rows are zeroed in `vault.db` (`secure_delete`); the
    /// copies in `vault.db-wal` go at the next coalesced checkpoint (``VaultDatabase/scrubIfNeeded()``).
    public func delete(_ token: Token) async throws {
        guard try await store.delete(token, at: clock()) else {
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
