import Audit
import CardTokens
import Foundation
import GRDB
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

/// Issue 8, finding 8: the keys derived from the root key (fingerprint, caller fingerprint,
/// credential hash, audit MAC, row MAC) rotate with a versioned root key (docs/CRYPTO.md §13.9).
@Suite("Root-key rotation")
struct RootRotationTests {
    static func int(_ vault: Vault, _ sql: String, _ arguments: StatementArguments = []) throws -> Int64? {
        try vault.database.pool.read { db in try Int64.fetchOne(db, sql: sql, arguments: arguments) }
    }

    @Test func finding8RotateRootChangesEveryDerivedKeyAndKeepsTheVaultWhole() async throws {
        try await withVault { vault, sandbox in
            let (credential, secret) = try await vault.credentials.create(
                name: "frontend", scopes: [.tokenize], purposes: [])
            let tokens = try await KeyLifecycleTests.seed(vault, count: 12)
            let old = vault.keyRing.root
            let rotation = try await vault.keys.rotateRoot()
            #expect(rotation == RootRotation(root: 1, dataKey: 2, resealedCredentials: [credential.id]))
            let new = vault.keyRing.root
            #expect(new.version == 1)
            for (a, b) in [
                (old.fingerprintKey, new.fingerprintKey), (old.callerFingerprintKey, new.callerFingerprintKey),
                (old.credentialKey, new.credentialKey), (old.auditKey, new.auditKey), (old.rowMACKey, new.rowMACKey),
            ] {
                #expect(a != b)
            }
            // The new root is wrapped under the master key as ("ROOT", 1) in the row `root.1`.
            let wrapped = try await vault.database.pool.read { db in
                try Data.fetchOne(db, sql: "SELECT wrapped_key FROM system_keys WHERE name = 'root.1'")
            }
            let master = try MasterKeyFile.load(path: sandbox.paths.masterKeyPath)
            let unwrapped = try WrappedKey.unwrap(
                [UInt8](try #require(wrapped)), label: .root, version: 1, master: master)
            #expect(
                try KeyDerivation.deriveSubkey(id: 1, context: "AUDITMAC", from: unwrapped) == new.auditKey)
            // Every row is sealed under the new row key only.
            #expect(vault.keyRing.rows.allSatisfy { new.rowMAC.verify($0) && !old.rowMAC.verify($0) })

            #expect(try await vault.audit.verify().ok)
            let last = try #require(try await vault.audit.records(after: 0, limit: 10_000).last)
            #expect(last.event.type == "keys.rotate_root")
            #expect(last.event.objects == ["root_key:1", "data_key:2"])
            #expect(last.event.detail?.hasPrefix("root_version=1 previous=") == true)

            // A fresh process opens it, verifies the log, authenticates the old key and opens
            // every record.
            let reopened = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            #expect(reopened.keyRing.root.version == 1)
            #expect(try await reopened.audit.verify().ok)
            #expect(await reopened.credentials.authenticate(secret: secret)?.id == credential.id)
            for token in tokens { try await reopened.tokens.verifyRecord(token) }
            // Appends go on in the new segment.
            try await reopened.audit.append([AuditTamper.event(1)])
            #expect(try await vault.audit.verify().ok)
        }
    }

    @Test func finding8RewrapMovesEveryFingerprintToTheNewRootAndDedupeWorksThroughout() async throws {
        try await withVault { vault, _ in
            let card = TestCard.visa
            let first = try await vault.tokens.tokenize(try card.request(dedupe: true)).metadata
            _ = try await KeyLifecycleTests.seed(vault, count: 30)
            try await vault.keys.rotateRoot()
            var status = try await vault.keys.status()
            #expect(status.activeRootVersion == 1)
            #expect(status.rootVersions.map(\.fingerprints) == [31, 0])

            // Before rewrap: dedupe still finds the record fingerprinted under root v0.
            let again = try await vault.tokens.tokenize(try card.request(dedupe: true))
            #expect(again.metadata.token == first.token && !again.created)
            // A second token of the same card gets its fingerprint under v1: not yet comparable.
            let second = try await vault.tokens.tokenize(try card.request()).metadata
            #expect(second.fingerprint != first.fingerprint)

            #expect(try await vault.keys.rewrap(batchSize: 7) == 31)
            status = try await vault.keys.status()
            #expect(status.rootVersions.map(\.fingerprints) == [0, 32])
            #expect(try Self.int(vault, "SELECT count(*) FROM cards WHERE fingerprint_version = 0") == 0)
            // After it, both tokens of the card carry the same fingerprint again, under v1, and
            // dedupe finds the record under its new fingerprint.
            let firstNow = try await vault.tokens.metadata(of: first.token)
            #expect(firstNow.fingerprint == second.fingerprint)
            #expect(firstNow.fingerprint != first.fingerprint)
            let third = try await vault.tokens.tokenize(try card.request(dedupe: true))
            #expect([first.token, second.token].contains(third.metadata.token) && !third.created)
            // The stored fingerprint is the documented one: BLAKE2b-128(CARDFPRT of root v1, PAN).
            let stored = try await vault.database.pool.read { db in
                try Data.fetchOne(
                    db, sql: "SELECT fingerprint FROM cards WHERE token = ?", arguments: [first.token.rawValue])
            }
            #expect(
                stored.map([UInt8].init)
                    == KeyedHash.hash(Array(card.pan.utf8), key: vault.keyRing.root.fingerprintKey, outputByteCount: 16)
            )
        }
    }

    @Test func finding8CredentialHashesMoveToTheNewRootAtTheNextAuthentication() async throws {
        try await withVault { vault, _ in
            let (credential, secret) = try await vault.credentials.create(
                name: "detok", scopes: [.detokenize], purposes: ["settlement:pan"])
            let (_, unused) = try await vault.credentials.create(name: "idle", scopes: [.tokenize], purposes: [])
            let hashBefore = try await vault.database.pool.read { db in
                try Data.fetchOne(
                    db, sql: "SELECT secret_hash FROM credentials WHERE id = ?", arguments: [credential.id])
            }
            try await vault.keys.rotateRoot()
            #expect(try Self.int(vault, "SELECT hash_version FROM credentials WHERE id = ?", [credential.id]) == 0)
            #expect(try await vault.keys.status().rootVersions.map(\.credentialHashes) == [2, 0])

            #expect(await vault.credentials.authenticate(secret: secret + "x") == nil)
            #expect(try Self.int(vault, "SELECT hash_version FROM credentials WHERE id = ?", [credential.id]) == 0)
            #expect(await vault.credentials.authenticate(secret: secret)?.id == credential.id)
            #expect(try Self.int(vault, "SELECT hash_version FROM credentials WHERE id = ?", [credential.id]) == 1)
            let hashAfter = try await vault.database.pool.read { db in
                try Data.fetchOne(
                    db, sql: "SELECT secret_hash FROM credentials WHERE id = ?", arguments: [credential.id])
            }
            #expect(hashAfter != hashBefore)
            #expect(
                hashAfter.map([UInt8].init) == KeyedHash.hash(Array(secret.utf8), key: vault.keyRing.root.credentialKey)
            )
            #expect(try await vault.keys.status().rootVersions.map(\.credentialHashes) == [1, 1])
            // The re-hashed row is sealed, and a new process reads and accepts it.
            try await vault.credentials.reload()
            #expect(await vault.credentials.authenticate(secret: secret)?.id == credential.id)
            #expect(await vault.credentials.authenticate(secret: unused) != nil)
            #expect(try await vault.audit.verify().ok)
        }
    }

    @Test func finding8AuditLogCutBackToTheOldSegmentUnderTheOldKeyIsDetected() async throws {
        try await withVault { vault, _ in
            try await vault.audit.append([AuditTamper.event(1)])
            try await vault.keys.rotateRoot()
            try await vault.audit.append([AuditTamper.event(2)])
            #expect(try await vault.audit.verify().ok)
            let rotation = try #require(
                try Self.int(vault, "SELECT sequence FROM audit_log WHERE type = 'keys.rotate_root'"))
            // Someone who holds the old root key (a copy of the old master key and vault.db)
            // deletes the new segment and seals both heads under the old audit key.
            let old = try #require(vault.keyRing.root(version: 0)).auditChain
            let lastOld = rotation - 1
            let mac = try AuditTamper.mac(vault, of: lastOld)
            try AuditTamper.cutTail(vault, after: lastOld)
            try AuditTamper.execute(
                vault, "UPDATE audit_head SET sequence = ?, mac = ?, head_mac = ?, key_version = 0",
                [lastOld, Data(mac), Data(old.headMAC(sequence: lastOld, mac: mac))])
            try AuditTamper.setHeadFile(
                vault,
                AuditTamper.headFileBytes(
                    StoredHead(sequence: lastOld, mac: mac, headMAC: old.headMAC(sequence: lastOld, mac: mac))))
            let verification = try await vault.audit.verify()
            #expect(!verification.ok)
            #expect(verification.reason?.contains("newest root key is v1") == true)
        }
    }

    @Test func finding8ARotationRecordForgedOrEditedUnderTheOldKeyIsDetected() async throws {
        try await withVault { vault, _ in
            try await vault.keys.rotateRoot()
            try await vault.audit.append([AuditTamper.event(1)])
            let rotation = try #require(
                try Self.int(vault, "SELECT sequence FROM audit_log WHERE type = 'keys.rotate_root'"))
            // Its detail edited (another previous commitment): its MAC and its closing word fail.
            try AuditTamper.execute(
                vault, "UPDATE audit_log SET detail = ? WHERE sequence = ?",
                ["root_version=1 previous=" + String(repeating: "0", count: 64), rotation])
            var verification = try await vault.audit.verify()
            #expect(!verification.ok && verification.firstBadRecord == rotation)
            // Re-MAC'd by someone with the old key only: still refused, the record must verify
            // under the new version's key.
            let old = try #require(vault.keyRing.root(version: 0)).auditChain
            let previous = try AuditTamper.mac(vault, of: rotation - 1)
            let records = try await vault.audit.records(after: rotation - 1, limit: 1)
            var event = try #require(records.first).event
            event.detail = old.segmentDetail(version: 1, sequence: rotation - 1, mac: previous)
            try AuditTamper.execute(
                vault, "UPDATE audit_log SET detail = ?, mac = ? WHERE sequence = ?",
                [event.detail, Data(old.mac(sequence: rotation, event: event, previous: previous)), rotation])
            verification = try await vault.audit.verify()
            #expect(!verification.ok && verification.firstBadRecord == rotation)
        }
    }

    @Test func finding8ARunningServerFollowsARotationMadeByAnotherProcess() async throws {
        try await withVault { server, sandbox in
            let (credential, secret) = try await server.credentials.create(
                name: "frontend", scopes: [.tokenize], purposes: [])
            let cli = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            try await cli.keys.rotateRoot()
            // The server has not reloaded: its appends find the head under root v1, take that
            // version in, and continue the new segment.
            #expect(server.keyRing.root.version == 0)
            try await server.audit.append([AuditTamper.event(1)])
            #expect(server.keyRing.root.version == 1)
            #expect(try await cli.audit.verify().ok)
            // Its credential cache accepts the rows re-sealed under the new row key.
            try await server.credentials.reload()
            #expect(await server.credentials.authenticate(secret: secret)?.id == credential.id)
            // Its tokenize meets the rotated data key, reloads and writes under both new versions.
            let token = try await server.tokens.tokenize(try TestCard.visa2.request()).metadata.token
            #expect(
                try Self.int(
                    server, "SELECT key_version * 10 + fingerprint_version FROM cards WHERE token = ?",
                    [token.rawValue]) == 21)
        }
    }

    @Test func finding8RotateMasterRewrapsEveryRootVersion() async throws {
        try await withVault { vault, sandbox in
            try await vault.keys.rotateRoot()
            try await vault.keys.rotateRoot()
            let newKey = sandbox.path("incoming/new.key")
            try Bytes.write(Array(repeating: 0x42, count: 32), to: newKey)
            try await vault.rotateMaster(newKeyPath: newKey)
            let reopened = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            #expect(reopened.keyRing.roots.map(\.version) == [0, 1, 2])
            #expect(try await reopened.audit.verify().ok)
            let master = try MasterKeyFile.load(path: sandbox.paths.masterKeyPath)
            let rows = try await reopened.database.pool.read { db in try RootKeyRow.all(db) }
            #expect(rows.count == 3)
            // The newest is wrapped as "ROOT", every older one as superseded ("ROLD").
            for row in rows {
                _ = try WrappedKey.unwrap(
                    row.wrappedKey, label: row.version == 2 ? .root : .supersededRoot, version: row.version,
                    master: master)
            }
        }
    }

    /// Review of finding 8: someone who kept the old root key re-seals every row with it and
    /// deletes the new root row; the old root is wrapped as superseded, so the vault refuses.
    @Test func finding8ARootRolledBackByAHolderOfTheOldRootKeyIsRefused() async throws {
        try await withVault { vault, sandbox in
            let old = try #require(vault.keyRing.root(version: 0))
            try await vault.keys.rotateRoot()
            try await vault.database.pool.write { db in
                try db.execute(sql: "DELETE FROM system_keys WHERE name = 'root.1'")
                for row in try SQLiteVaultStore.dataKeys(db) {
                    try db.execute(
                        sql: "UPDATE data_keys SET mac = ? WHERE version = ?",
                        arguments: [Data(old.rowMAC.mac(of: row)), row.version])
                }
            }
            let error = await #expect(throws: VaultError.self) {
                _ = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            }
            #expect(error?.code == .recordCorrupt)
            #expect(error?.message.contains("superseded") == true, "\(String(describing: error))")
        }
    }

    /// Review of finding 8: rows the vault never writes in `system_keys` and `audit_head` are
    /// refused with an error, never a crash, and never taken for a wrong master key.
    @Test func finding8MalformedKeyRowsAreRefusedNotCrashedOn() async throws {
        try await withVault { vault, sandbox in
            try await vault.keys.rotateRoot()
            // A row without a name is no root row: ignored.
            try AuditTamper.execute(vault, "INSERT INTO system_keys VALUES (NULL, zeroblob(80), 0)")
            _ = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            // A root row of the wrong type.
            try AuditTamper.execute(vault, "INSERT INTO system_keys VALUES ('root.2', zeroblob(80), 'x')")
            var error = await #expect(throws: VaultError.self) {
                _ = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            }
            #expect(error?.code == .recordCorrupt)
            // A root row this master key does not open, beside ones it opens: forged, not a wrong key.
            try AuditTamper.execute(vault, "UPDATE system_keys SET created_at_ms = 0 WHERE name = 'root.2'")
            error = await #expect(throws: VaultError.self) {
                _ = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            }
            #expect(error?.code == .recordCorrupt)
            try AuditTamper.execute(vault, "DELETE FROM system_keys WHERE name = 'root.2'")
            // An audit head of the wrong type stops appends with an error.
            try AuditTamper.execute(vault, "UPDATE audit_head SET key_version = 'x'")
            await #expect(throws: AuditLogError.self) { try await vault.audit.append([AuditTamper.event(1)]) }
        }
    }

    /// Review of finding 8: `audit_head.key_version` is not what picks the key: an edit cannot
    /// make the log continue under an older root's audit key.
    @Test func finding8AnEditedHeadVersionDoesNotPickTheKey() async throws {
        try await withVault { vault, _ in
            try await vault.keys.rotateRoot()
            try AuditTamper.execute(vault, "UPDATE audit_head SET key_version = 0")
            try await vault.audit.append([AuditTamper.event(1)])
            #expect(try await vault.audit.verify().ok)
            // Only a root rotation writes a segment opening.
            var forged = AuditTamper.event(2)
            forged.type = "keys.rotate_root"
            await #expect(throws: AuditLogError.self) { try await vault.audit.append([forged]) }
        }
    }

    @Test("finding 8: segment commitment known-answer vector of docs/CRYPTO.md §17")
    func finding8SegmentCommitmentKnownAnswer() {
        let key = AuditTamperTests.bytes(hex: "e89bd417cca881ec18e32e1ee5eda83d9f2dd5529f46ad34d3c33ebe3da1c47a")
        let chain = AuditChain(key: key.withUnsafeBytes { SecretBytes(copying: $0) })
        let mac2 = AuditTamperTests.bytes(hex: "13888b2eb07ad2f374d4608d16f8fff9e44d0d1be99c87006f9f598b1cfddef9")
        #expect(
            chain.segmentDetail(version: 1, sequence: 2, mac: mac2)
                == "root_version=1 previous=4c33855f8b8781814029db79c2491087a6601a3809a391e58b55c19fae3370e7")
        #expect(AuditChain.segmentVersion(detail: "root_version=12 previous=00") == 12)
        #expect(AuditChain.segmentVersion(detail: "root_version=x previous=00") == nil)
    }
}
