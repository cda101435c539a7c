import CardTokens
import Foundation
import GRDB
import SQLiteSupport
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

/// Security review, issue 8, finding 3: deleted and used CVVs, deleted PANs and retired data
/// keys survived in `vault.db-wal` (and free pages), where the master key opened them.
@Suite("Finding 3: no stale copy in vault.db* opens")
struct StaleCopyTests {
    @Test("Finding 3: after use, expiry, delete, rewrap and retire, nothing stale opens from any vault.db* file")
    func finding3NothingStaleOpensFromTheFiles() async throws {
        try await withVault { vault, sandbox in
            let clock = ManualClock()
            let tokens = TokenVault(
                store: vault.store, keyRing: vault.keyRing, cvvTimeToLive: 60, cvvEpochLength: 15,
                logger: TestLog.quiet(), clock: clock.function)
            let used = try await tokenize(.visa.with(cvv: "123"), in: tokens).metadata.token
            let expired = try await tokenize(.mastercard.with(cvv: "321"), in: tokens).metadata.token
            let deleted = try await tokenize(.amex.with(cvv: "1234"), in: tokens).metadata.token

            // Used: taken once, as the gateway does (its SPI is for Detokenization only): the row is
            // read and deleted, then opened with the in-memory epoch key.
            let taken = try #require(try await tokens.store.takeCVV(of: used, now: clock.now))
            #expect(try Records.openCVV(taken.ciphertext, token: used.rawValue, tokens: tokens).data == "123")
            try await tokens.delete(deleted)
            // Expired: past the TTL and past its epoch, so its key is destroyed with the purge.
            clock.advance(by: 60 + 15 + 1)
            #expect(try await tokens.purgeExpiredCVVs() == 1)
            #expect(tokens.cvvKeys.count == 0)
            #expect(try await tokens.metadata(of: expired).cvvExpiresAt == nil)

            // A CVV still held, and a retired version: the old one is rewrapped away and retired.
            let live = try await tokenize(.visa2.with(cvv: "456"), in: tokens).metadata.token
            #expect(try await tokens.metadata(of: live).cvvHeld(at: clock.now))
            #expect(try await vault.keys.rotate() == 2)
            #expect(try await vault.keys.rewrap() == 3)
            #expect(try await vault.keys.retire(version: 1), "the WAL was truncated after the retirement")

            let scan = try FileScan(sandbox)
            #expect(scan.files.keys.contains("vault.db-wal") == false || scan.files["vault.db-wal"]!.isEmpty)
            // The retired key: no copy of it opens anywhere.
            #expect(!scan.wrappedKeys.contains { $0.label == "DEK1" && $0.version == 1 }, "retired key v1 recoverable")
            #expect(scan.wrappedKeys.contains { $0.label == "DEK1" && $0.version == 2 }, "the scan finds live keys")
            // No CVV opens, whether used, expired, deleted or still held: none is under a key
            // that master.key and the database give.
            let cvvs = scan.envelopes.filter { $0.kind == RecordEnvelope.Kind.cvv.rawValue }
            #expect(cvvs.isEmpty, "CVVs recoverable: \(cvvs)")
            // The deleted token's PAN opens nowhere; the live cards do (the scan works).
            let cards = scan.envelopes.filter { $0.kind == RecordEnvelope.Kind.card.rawValue }
            #expect(!cards.contains { $0.token == deleted.rawValue }, "deleted PAN recoverable")
            #expect(Set(cards.map(\.token)) == Set([used, expired, live].map(\.rawValue)))
            let pans = [
                used.rawValue: TestCard.visa.pan, expired.rawValue: TestCard.mastercard.pan,
                live.rawValue: TestCard.visa2.pan,
            ]
            #expect(cards.allSatisfy { pans[$0.token] == $0.data })
        }
    }

    @Test("Finding 3: a deleted token's PAN is in the WAL until the coalesced checkpoint, and gone after it")
    func finding3DeleteIsScrubbedByTheCoalescedCheckpoint() async throws {
        try await withVault { vault, sandbox in
            // Start from an empty WAL, so what follows is the delete's own story.
            #expect(await vault.database.truncateWAL())
            let deleted = try await tokenize(.visa, in: vault.tokens).metadata.token
            let kept = try await tokenize(.mastercard, in: vault.tokens).metadata.token
            try await vault.tokens.delete(deleted)

            // What secure_delete alone leaves: the row is zeroed in vault.db but the WAL still
            // holds the frame written before the delete, and the master key opens it.
            let before = try FileScan(sandbox)
            #expect(before.envelopes.contains { $0.token == deleted.rawValue && $0.file == "vault.db-wal" })

            // The server's maintenance task runs this once a second.
            #expect(await vault.database.scrubIfNeeded())
            #expect(await vault.database.scrubIfNeeded() == false, "nothing more to do")
            let after = try FileScan(sandbox)
            #expect(!after.envelopes.contains { $0.token == deleted.rawValue })
            #expect(after.envelopes.contains { $0.token == kept.rawValue })
        }
    }

    @Test("Finding 3: a CVV is sealed under an in-memory epoch key that the key ring does not hold")
    func finding3CVVKeysAreNotInTheKeyRing() async throws {
        try await withVault { vault, _ in
            let token = try await tokenize(.visa.with(cvv: "123"), in: vault.tokens).metadata.token.rawValue
            let sealed = try #require(try DB.ciphertext(vault, table: "cvvs", token: token))
            #expect(sealed.first == RecordEnvelope.cvvFormatByte)
            // No data key opens it; the vault's own epoch key does.
            for version in vault.keyRing.rows.map(\.version) {
                let key = try #require(vault.keyRing.key(version: version))
                let box = Array(sealed.dropFirst(RecordEnvelope.cvvHeaderByteCount))
                #expect(throws: (any Error).self) { _ = try box.withUnsafeBytes { try SecretBox.open($0, key: key) } }
            }
            #expect(try Records.openCVV(sealed, token: token, tokens: vault.tokens).data == "123")
            // Another process (or this one after a restart) holds no key for it: not held.
            let restarted = TokenVault(store: vault.store, keyRing: vault.keyRing, logger: TestLog.quiet())
            #expect(try await restarted.metadata(of: Token(unchecked: token)).cvvExpiresAt == nil)
            let row = try #require(try await restarted.store.takeCVV(of: Token(unchecked: token), now: Date()))
            #expect(
                try TokenVault.cvvEpochKey(
                    of: row.ciphertext, token: Token(unchecked: token), keys: restarted.cvvKeys, now: Date())
                    == nil)
        }
    }

    @Test("Finding 3: epoch keys are destroyed once their epoch and a whole TTL have passed, not before")
    func finding3EpochKeysLiveEpochPlusTTL() {
        let keys = CVVEpochKeys(timeToLive: 60, epochLength: 15)
        let start = Date(timeIntervalSince1970: 1_900_000_000)
        let first = keys.sealingKey(at: start)
        #expect(keys.sealingKey(at: start + 14.9).epoch == first.epoch, "same epoch")
        let second = keys.sealingKey(at: start + 15)
        #expect(second.epoch != first.epoch && second.epoch >> 32 == first.epoch >> 32)
        // A CVV sealed at the end of the first epoch expires at 75 s: its key lives until then.
        #expect(keys.key(for: first.epoch, at: start + 74.9) != nil)
        #expect(keys.key(for: first.epoch, at: start + 75) == nil)
        #expect(keys.key(for: second.epoch, at: start + 75) != nil)
        // Time going back does not bring a destroyed epoch back.
        #expect(keys.sealingKey(at: start).epoch != first.epoch)
        // Another instance's ids name nothing here.
        #expect(CVVEpochKeys(timeToLive: 60).key(for: second.epoch, at: start + 16) == nil)
    }
}

/// docs/CRYPTO.md §17: the CVV envelope's known-answer vector.
@Suite("CVV envelope format")
struct CVVEnvelopeVectorTests {
    @Test("Finding 3: the CVV envelope is 0x02 ‖ u64 BE epoch ‖ box, as CRYPTO.md §7 and §17 give it")
    func finding3CVVEnvelopeKnownAnswer() throws {
        let key = Array(UInt8(0x60)...UInt8(0x7F)).withUnsafeBytes { SecretBytes(copying: $0) }
        let token = "tok_-OhqqeV---31-kF40VR71FcA2-oD2k"
        let scratch = SecretBytes(zeroedCount: RecordEnvelope.maximumPlaintextByteCount)
        let envelope = scratch.withUnsafeMutableBytes { buffer -> [UInt8] in
            let count = Array("123".utf8).withUnsafeBufferPointer { digits in
                RecordEnvelope.writePlaintext(kind: .cvv, token: token, data: digits, into: buffer)
            }
            return [UInt8](repeating: 0xD0, count: 24).withUnsafeBytes { nonce in
                RecordEnvelope.sealCVV(
                    UnsafeRawBufferPointer(rebasing: buffer[0..<count]), epoch: 0x1234_5678_0000_0003, key: key,
                    nonce: nonce)
            }
        }
        let expected =
            "021234567800000003d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d03c0f2b21c5dcfd"
            + "c37d9b2d64b5bcfd674918fc2084c6c26ceaa222e4288576bb04e4951195af5b2383cacfb1690b15"
            + "c6531eb0cb771e42505d"
        #expect(Hex.encode(envelope) == expected)
        #expect(try envelope.withUnsafeBytes { try RecordEnvelope.cvvEpoch(of: $0) } == 0x1234_5678_0000_0003)
        let count = try envelope.withUnsafeBytes { bytes in
            try scratch.withUnsafeMutableBytes {
                try RecordEnvelope.open(bytes, kind: .cvv, token: token, key: key, into: $0)
            }
        }
        #expect(count == 41)
    }
}

/// Upgrading a vault whose CVVs were sealed under data keys.
@Suite("CVV epoch migration")
struct CVVEpochMigrationTests {
    @Test("Finding 3: the upgrade deletes CVVs sealed under a data key and scrubs them from the WAL")
    func finding3MigrationDropsDataKeyCVVs() async throws {
        try await withSandbox { sandbox in
            let database = try VaultDatabase.open(directory: sandbox.paths.dataDirectory, create: true)
            try database.migrate(upTo: "vault.tenants")
            try await database.pool.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO cards (token, format, bin, last4, brand, exp_month, exp_year, fingerprint,
                            fingerprint_prefix, key_version, ciphertext, created_at_ms)
                        VALUES ('tok_A', 'opaque', '411111', '1111', 'visa', 12, 2031, x'00', 0, 1, x'01', 0);
                        INSERT INTO cvvs (token, key_version, ciphertext, expires_at_ms)
                        VALUES ('tok_A', 1, x'0100000001', 9999999999999);
                        """)
            }
            try database.migrate()
            let (cvvs, columns) = try await database.pool.read { db in
                (
                    try Int.fetchOne(db, sql: "SELECT count(*) FROM cvvs") ?? -1,
                    try db.columns(in: "cvvs").map(\.name)
                )
            }
            #expect(cvvs == 0)
            #expect(columns.contains("epoch") && !columns.contains("key_version"))
            #expect(await database.scrubIfNeeded(), "the deleted rows' WAL copies are truncated")
        }
    }
}
