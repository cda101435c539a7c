package import Audit
@_spi(CardholderData) package import CardTokens
import Foundation
package import VaultCrypto

/// What became of ``TokenVault/issue(_:format:cardVerificationKey:by:audit:)``.
package enum IssueOutcome: Sendable {
    /// Stored and audited, in one transaction.
    case issued(CardMetadata)
    /// A record already holds this PAN: nothing was written; draw another PAN.
    case panTaken
}

/// The card-verification keys and the storage of issued cards (docs/CRYPTO.md §21). Package
/// level: only the targets that depend on `TokenVault`, all of them in the CDE or its wiring,
/// can reach it; `CardIssuing` builds the issuer on it.
extension TokenVault {
    /// The newest card-verification key and its version, created (version 1, audited as
    /// `keys.create_cvk`) if the vault has none yet.
    package func activeCardVerificationKey() async throws -> (version: UInt32, key: SecretBytes) {
        let row: CardVerificationKeyRow
        if let newest = try await store.cardVerificationKeys().last {
            row = newest
        } else {
            let now = clock()
            row = try await store.createCardVerificationKeyIfNone(
                at: now, master: keyRing.master, newKey: SecretBytes(randomCount: KeyedHash.keyByteCount),
                audit: { version in
                    AuditEvent(
                        actor: "system", type: "keys.create_cvk", time: now, outcome: .success, origin: "local",
                        objects: ["cvk:\(version)"])
                })
        }
        return (row.version, try keyRing.cardVerificationKey(row))
    }

    /// The card-verification key of `version`.
    /// - Throws: ``VaultError`` `key_version_unknown` if the vault has no such version.
    package func cardVerificationKey(version: UInt32) async throws -> SecretBytes {
        if let known = keyRing.cardVerificationKey(version: version) { return known }
        guard let row = try await store.cardVerificationKeys().first(where: { $0.version == version }) else {
            throw VaultError(.unknownKeyVersion, "there is no card-verification key v\(version)")
        }
        return try keyRing.cardVerificationKey(row)
    }

    /// Tokenizes `card`, a card the vault issues under card-verification key `version`, for
    /// `principal`'s tenant, unless any record of any tenant, creator or format already holds
    /// its PAN under any root version: that check and the insert share one transaction, with the
    /// audit record `audit` makes for the new token.
    package func issue(
        _ card: CardInput, format: TokenFormat, cardVerificationKey version: UInt32, by principal: Principal,
        audit: @Sendable (Token) -> AuditEvent
    ) async throws -> IssueOutcome {
        for _ in 0..<Self.maximumTokenAttempts {
            let dataKey = keyRing.active
            // Read after the data key, as in tokenize: a root rotation also rotates the data key,
            // so a write made under a root this call has not seen is refused as stale.
            let root = keyRing.root
            let fingerprints = card.withPANDigits { self.fingerprints(ofPAN: $0) }
            guard let newest = fingerprints.first(where: { $0.version == root.version }) else {
                throw VaultError(.notInitialized, "the key ring lacks its own newest root version")
            }
            var write = prepare(
                [(TokenizeRequest(card: card, format: format), newest.fingerprint, nil)], principal: principal,
                dataKey: dataKey, root: root)[0]
            write.mode = .issue
            write.card.cvkVersion = version
            write.olderFingerprints = fingerprints.filter { $0.version != root.version }
            write.audit = [audit(write.card.metadata.token)]
            switch try await store.commit([write])[0] {
            case .stored:
                return .issued(write.card.metadata)
            case .fingerprintTaken:
                return .panTaken
            case .tokenTaken:
                continue
            case .staleKey:
                try await refreshKeys()
            case .existing, .missing:
                throw VaultError(.recordCorrupt, "the store answered an issue write as a tokenize write")
            }
        }
        throw VaultError(.keyVersionActive, "the active key kept changing; retry the request")
    }

    /// Opens the record of `token`, a card the vault issued, in `tenant`, and hands `body` the
    /// card and the card-verification key it was issued under. The plaintext is in a scratch
    /// buffer wiped before this returns.
    /// - Throws: ``VaultError`` `token_not_found` if `token` is not an issued card of `tenant`.
    package func withIssuedCard<R>(
        _ token: Token, tenant: String, _ body: (_ card: RevealedCard, _ cardVerificationKey: SecretBytes) throws -> R
    ) async throws -> R {
        guard let card = try await store.card(token, now: clock()), card.tenant == tenant,
            let version = card.cvkVersion
        else { throw VaultError(.tokenNotFound, "no such issued card") }
        let key = try await cardVerificationKey(version: version)
        let scratch = SecretBytes(zeroedCount: RecordEnvelope.maximumPlaintextByteCount, protection: .wipedOnRelease)
        defer { scratch.wipe() }
        let count = try Self.open(card.ciphertext, kind: .card, token: token.rawValue, keyRing: keyRing, into: scratch)
        return try scratch.withUnsafeBytes { plaintext in
            try body(RevealedCard(token: token, cardPlaintext: plaintext, count: count), key)
        }
    }

    /// The fingerprints of `pan` (ASCII digits) under every root version the vault holds: how
    /// ``issuedCard(fingerprints:)`` finds a card without the PAN ever leaving the caller's buffer.
    package func fingerprints(ofPAN pan: UnsafeBufferPointer<UInt8>) -> [(version: UInt32, fingerprint: [UInt8])] {
        keyRing.roots.map { root in
            (
                version: root.version,
                fingerprint: KeyedHash.hash(UnsafeRawBufferPointer(pan), key: root.fingerprintKey, outputByteCount: 16)
            )
        }
    }

    /// The card this vault issued whose PAN has one of `fingerprints`, of any tenant, or `nil`
    /// (a card tokenized from outside is not one): for the card network's messages.
    package func issuedCard(fingerprints: [(version: UInt32, fingerprint: [UInt8])]) async throws -> StoredCard? {
        try await store.issuedCard(fingerprints: fingerprints)
    }
}
