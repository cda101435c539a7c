import Audit
import CardTokens
import Foundation
import GRDB
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

/// Issue 8, finding 2: `vault keys rotate` overlapping `vault keys rotate-master` left the vault
/// unopenable and the newest cards lost. Each interleaving is played in process with two opened
/// vaults over the same folders, as two CLI commands would be.
@Suite("Finding 2: rotate and rotate-master never interleave", .timeLimit(.minutes(10)))
struct KeyRingRaceTests {
    /// A new master key file in the sandbox (32 random bytes, mode 0600).
    static func newMasterKey(_ sandbox: Sandbox) throws -> String {
        let path = sandbox.path("new-\(UUID().uuidString).key")
        try Bytes.write(Bytes.random(32), to: path)
        return path
    }

    /// Opens the vault afresh with the installed `master.key` and checks that it opens every
    /// non-retired version and every card still verifies.
    static func expectEverythingOpens(
        _ sandbox: Sandbox, tokens: [Token], versions: [UInt32], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let fresh = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
        let rows = fresh.keyRing.rows.filter { $0.state != .retired }
        #expect(rows.map(\.version) == versions, sourceLocation: sourceLocation)
        for version in versions {
            #expect(fresh.keyRing.key(version: version) != nil, sourceLocation: sourceLocation)
        }
        for token in tokens { try await fresh.tokens.verifyRecord(token) }
        // The new master key also encrypts and decrypts new cards.
        let card = try await tokenize(.mastercard, in: fresh.tokens).metadata.token
        try await fresh.tokens.verifyRecord(card)
        #expect(try await fresh.audit.verify().ok, sourceLocation: sourceLocation)
    }

    @Test("finding 2: a rotate that loaded the master key before a rotate-master is refused and writes nothing")
    func finding2RotateAfterRotateMasterIsRefused() async throws {
        try await withVault { rotating, sandbox in
            let first = try await tokenize(.visa, in: rotating.tokens).metadata.token
            // `rotate-master` runs to completion while `rotate` holds the old key in memory.
            let other = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            try await other.rotateMaster(newKeyPath: try Self.newMasterKey(sandbox))

            let refused = await #expect(throws: VaultError.self) { try await rotating.keys.rotate() }
            #expect(refused?.code == .masterKeyChanged)
            #expect(refused?.message == "the master key changed while this command ran; run it again")
            #expect(try DB.count(rotating, "SELECT count(*) FROM data_keys") == 1)
            #expect(try DB.count(rotating, "SELECT count(*) FROM audit_log WHERE type = 'keys.rotate'") == 0)

            try await Self.expectEverythingOpens(sandbox, tokens: [first], versions: [1])
            // Run again (a fresh command), it succeeds under the new key.
            let again = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            #expect(try await again.keys.rotate() == 2)
            let second = try await tokenize(.visa2, in: again.tokens).metadata.token
            try await Self.expectEverythingOpens(sandbox, tokens: [first, second], versions: [1, 2])
        }
    }

    @Test("finding 2: a rotate-master that loaded its ring before a rotate re-wraps the new version too")
    func finding2RotateMasterAfterRotateCoversTheNewVersion() async throws {
        try await withVault { rotating, sandbox in
            let first = try await tokenize(.visa, in: rotating.tokens).metadata.token
            // `rotate-master` opened the vault (ring: v1) before `rotate` added v2 and sealed a card.
            let mastering = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            #expect(try await rotating.keys.rotate() == 2)
            let second = try await tokenize(.visa2, in: rotating.tokens).metadata.token
            #expect(try await rotating.store.card(second, now: Date())?.keyVersion == 2)

            try await mastering.rotateMaster(newKeyPath: try Self.newMasterKey(sandbox))
            let record = try #require(
                try await mastering.audit.records().last { $0.event.type == "keys.rotate_master" })
            #expect(record.event.objects == ["data_key:1", "data_key:2", "root_key"])

            try await Self.expectEverythingOpens(sandbox, tokens: [first, second], versions: [1, 2])
            // The first command still holds the old key: its next key-ring change is refused.
            let refused = await #expect(throws: VaultError.self) { try await rotating.keys.rotate() }
            #expect(refused?.code == .masterKeyChanged)
        }
    }

    @Test("finding 2: rotate, retire and rotate-master wait for the key-folder lock")
    func finding2KeyRingChangesWaitForTheLock() async throws {
        try await withVault { vault, sandbox in
            let lock = sandbox.paths.keyRingLock
            #expect(lock.path == sandbox.paths.keysDirectory + "/.keyring.lock")
            let held = try #require(try lock.tryAcquire())
            // A second open file description conflicts, in this process as in another.
            #expect(try lock.tryAcquire() == nil)

            let (rotationWaits, rotationWaiting) = AsyncStream.makeStream(of: Void.self)
            let (masteringWaits, masteringWaiting) = AsyncStream.makeStream(of: Void.self)
            let rotation = Task {
                try await KeyRingLock.$foundHeld.withValue({ rotationWaiting.yield() }) {
                    try await vault.keys.rotate()
                }
            }
            let newKey = try Self.newMasterKey(sandbox)
            let mastering = Task {
                try await KeyRingLock.$foundHeld.withValue({ masteringWaiting.yield() }) {
                    try await vault.rotateMaster(newKeyPath: newKey)
                }
            }
            // Both have found the lock held and wait for it, however long they took to get there.
            for await _ in rotationWaits { break }
            for await _ in masteringWaits { break }
            // Neither has changed the key ring while the lock is held.
            #expect(try DB.count(vault, "SELECT count(*) FROM data_keys") == 1)
            #expect(!FileManager.default.fileExists(atPath: sandbox.paths.masterKeyPath + ".next"))

            held.release()
            #expect(try await rotation.value == 2)
            try await mastering.value
            #expect(try lock.tryAcquire() != nil)
            try await Self.expectEverythingOpens(sandbox, tokens: [], versions: [1, 2])
        }
    }

    /// Issue 8, finding 8: what the corrected help and THREAT_MODEL.md say. `rotate-master` does not
    /// reach copies of `vault.db`: one made before still opens with the old key, with every card.
    @Test("finding 8: a copy of vault.db made before rotate-master still opens with the old master key")
    func finding8OldCopyStillOpensWithTheOldKey() async throws {
        try await withVault { vault, sandbox in
            let token = try await tokenize(.visa, in: vault.tokens).metadata.token
            try DB.checkpoint(vault)
            let copy = VaultPaths(
                dataDirectory: sandbox.path("backup"), keysDirectory: sandbox.path("old-keys"),
                masterKeyPath: sandbox.path("old-keys/master.key"))
            try FileManager.default.createDirectory(atPath: copy.dataDirectory, withIntermediateDirectories: true)
            try FileManager.default.copyItem(
                atPath: sandbox.databasePath, toPath: copy.dataDirectory + "/" + VaultDatabase.fileName)
            try FileManager.default.copyItem(atPath: sandbox.paths.auditHeadPath, toPath: copy.auditHeadPath)
            try Bytes.write(try Bytes.read(sandbox.paths.masterKeyPath), to: copy.masterKeyPath)

            try await vault.rotateMaster(newKeyPath: try Self.newMasterKey(sandbox))
            let old = try await Vault.open(paths: copy, logger: TestLog.quiet())
            try await old.tokens.verifyRecord(token)
        }
    }
}
