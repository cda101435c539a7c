import Audit
import CardTokens
import Foundation
import GRDB
import InMemoryLogging
import Logging
import Synchronization
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

@Suite("Master key")
struct MasterKeyTests {
    // MARK: Initialisation

    @Test func initializeTwiceCreatesNothingTheSecondTime() async throws {
        try await withSandbox { sandbox in
            let logger = TestLog.quiet()
            let first = try await Vault.initialize(paths: sandbox.paths, logger: logger)
            #expect(first.createdMasterKey && first.createdKeyRing)
            let keyPath = sandbox.paths.masterKeyPath
            #expect(try Bytes.mode(of: keyPath) == 0o600)
            #expect(try Bytes.read(keyPath).count == 32)
            #expect(try Bytes.mode(of: sandbox.paths.keysDirectory) & 0o077 == 0)
            let key = try Bytes.read(keyPath)

            let second = try await Vault.initialize(paths: sandbox.paths, logger: logger)
            #expect(!second.createdMasterKey && !second.createdKeyRing)
            #expect(try Bytes.read(keyPath) == key)

            let vault = try await Vault.open(paths: sandbox.paths, logger: logger)
            let types = try await vault.audit.records().map(\.event.type)
            #expect(types == ["keys.init_master", "keys.init"])
            #expect(try await vault.keys.status().versions.count == 1)
        }
    }

    @Test(
        "Finding 17: a master key inside the data folder, or the data inside the key folder, is refused (PCI DSS 3.6.1.2)"
    )
    func keysInsideTheDataFolderAreRefused() async throws {
        try await withSandbox { sandbox in
            let logger = TestLog.quiet()
            let data = sandbox.path("data")
            let cases = [
                VaultPaths(dataDirectory: data, keysDirectory: data + "/keys"),
                VaultPaths(dataDirectory: data, keysDirectory: data),
                VaultPaths(dataDirectory: data + "/", keysDirectory: data + "/./Keys"),
                VaultPaths(
                    dataDirectory: data, keysDirectory: sandbox.path("Keys"), masterKeyPath: data + "/master.key"),
                VaultPaths(dataDirectory: sandbox.path("Keys") + "/data", keysDirectory: sandbox.path("Keys")),
            ]
            for paths in cases {
                let error = try await #require(throws: VaultError.self, "\(paths)") {
                    try await Vault.initialize(paths: paths, logger: logger)
                }
                #expect(error.code == .invalidArgument)
                #expect(error.message.contains("PCI DSS 3.6.1.2"))
            }
            #expect(!FileManager.default.fileExists(atPath: data + "/vault.db"))
            // Beside each other is fine, and so is a name that only starts like the data folder's.
            let apart = VaultPaths(dataDirectory: data, keysDirectory: sandbox.path("data-keys"))
            _ = try await Vault.initialize(paths: apart, logger: logger)
            _ = try await Vault.open(paths: apart, logger: logger)
            await #expect(throws: VaultError.self) {
                try await Vault.open(
                    paths: VaultPaths(
                        dataDirectory: data, keysDirectory: sandbox.path("data-keys"),
                        masterKeyPath: data + "/master.key"), logger: logger)
            }
        }
    }

    @Test func initializeWithAKeyRingButNoMasterKeyRefuses() async throws {
        try await withSandbox { sandbox in
            _ = try await Vault.initialize(paths: sandbox.paths, logger: TestLog.quiet())
            try FileManager.default.removeItem(atPath: sandbox.paths.masterKeyPath)
            let error = await #expect(throws: MasterKeyError.self) {
                _ = try await Vault.initialize(paths: sandbox.paths, logger: TestLog.quiet())
            }
            #expect(error?.code == .missing)
            #expect(error.map { String(describing: $0).contains(sandbox.paths.masterKeyPath) } ?? false)
            // It did not make a new key that could not open the key ring.
            #expect(!FileManager.default.fileExists(atPath: sandbox.paths.masterKeyPath))
        }
    }

    @Test func initializeWithAnotherMasterKeyRefuses() async throws {
        try await withSandbox { sandbox in
            _ = try await Vault.initialize(paths: sandbox.paths, logger: TestLog.quiet())
            try FileManager.default.removeItem(atPath: sandbox.paths.masterKeyPath)
            try Bytes.write(Bytes.random(32), to: sandbox.paths.masterKeyPath)
            let error = await #expect(throws: MasterKeyError.self) {
                _ = try await Vault.initialize(paths: sandbox.paths, logger: TestLog.quiet())
            }
            #expect(error?.code == .wrongKey)
        }
    }

    @Test func openWithoutAVaultSaysSo() async throws {
        try await withSandbox { sandbox in
            try FileManager.default.createDirectory(
                atPath: sandbox.paths.keysDirectory, withIntermediateDirectories: true)
            _ = try MasterKeyFile.create(path: sandbox.paths.masterKeyPath)
            let error = await #expect(throws: VaultError.self) {
                _ = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            }
            #expect(error?.code == .notInitialized)
            #expect(!FileManager.default.fileExists(atPath: sandbox.databasePath))
        }
    }

    // MARK: Refusing a bad master key

    enum Problem: String, CaseIterable, Sendable {
        case missing, shortFile, readableByOthers, wrongKey

        var expected: MasterKeyError.Code {
            switch self {
            case .missing: .missing
            case .shortFile: .wrongSize
            case .readableByOthers: .permissionsTooOpen
            case .wrongKey: .wrongKey
            }
        }

        func apply(to path: String) throws {
            switch self {
            case .missing:
                try FileManager.default.removeItem(atPath: path)
            case .shortFile:
                try FileManager.default.removeItem(atPath: path)
                try Bytes.write(Bytes.random(31), to: path)
            case .readableByOthers:
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
            case .wrongKey:
                try FileManager.default.removeItem(atPath: path)
                try Bytes.write(Bytes.random(32), to: path)
            }
        }
    }

    @Test(arguments: Problem.allCases)
    func openRefusesABadMasterKeyAndChangesNothing(problem: Problem) async throws {
        try await withSandbox { sandbox in
            let logger = TestLog.quiet()
            _ = try await Vault.initialize(paths: sandbox.paths, logger: logger)
            do {
                let vault = try await Vault.open(paths: sandbox.paths, logger: logger)
                _ = try await tokenize(.visa, in: vault.tokens)
                try DB.checkpoint(vault)
            }
            let before = try Bytes.read(sandbox.databasePath)
            try problem.apply(to: sandbox.paths.masterKeyPath)

            let error = await #expect(throws: MasterKeyError.self) {
                _ = try await Vault.open(paths: sandbox.paths, logger: logger)
            }
            #expect(error?.code == problem.expected)
            #expect(error?.path == sandbox.paths.masterKeyPath)
            #expect(error.map { String(describing: $0).contains(sandbox.paths.masterKeyPath) } ?? false)
            #expect(try Bytes.read(sandbox.databasePath) == before, "vault.db changed")
        }
    }

    // MARK: Rotating the master key

    @Test func rotateMaster() async throws {
        try await withVault { vault, sandbox in
            let paths = sandbox.paths
            let tokens = try await KeyLifecycleTests.seed(vault, count: 10)
            _ = try await vault.keys.rotate()  // two data keys to re-wrap
            let oldKey = try Bytes.read(paths.masterKeyPath)
            let newKey = Bytes.random(32)
            let newKeyPath = sandbox.path("incoming/new.key")
            try Bytes.write(newKey, to: newKeyPath)

            try await vault.rotateMaster(newKeyPath: newKeyPath)
            #expect(try Bytes.read(paths.masterKeyPath) == newKey)
            #expect(try Bytes.mode(of: paths.masterKeyPath) == 0o600)
            #expect(!FileManager.default.fileExists(atPath: paths.masterKeyPath + ".next"))
            // The running instance keeps working under the new master key.
            for token in tokens { try await vault.tokens.verifyRecord(token) }
            _ = try await tokenize(.visa, in: vault.tokens)
            #expect(try await vault.audit.records().contains { $0.event.type == "keys.rotate_master" })
            #expect(try await vault.audit.verify().ok)

            // The old key no longer opens the vault.
            let oldKeyPaths = VaultPaths(
                dataDirectory: paths.dataDirectory, keysDirectory: sandbox.path("old"),
                masterKeyPath: sandbox.path("old/master.key"))
            try Bytes.write(oldKey, to: oldKeyPaths.masterKeyPath)
            let error = await #expect(throws: MasterKeyError.self) {
                _ = try await Vault.open(paths: oldKeyPaths, logger: TestLog.quiet())
            }
            #expect(error?.code == .wrongKey)
            #expect(error.map { String(describing: $0).contains(oldKeyPaths.masterKeyPath) } ?? false)

            // The installed key does, and every record still opens.
            let reopened = try await Vault.open(paths: paths, logger: TestLog.quiet())
            for token in tokens { try await reopened.tokens.verifyRecord(token) }
            // CVV keys live in the memory of the instance that sealed them: it still opens its
            // CVVs; the reopened one (a restart) holds none of them any more.
            try await KeyLifecycleTests.openEverything(vault)
            for token in tokens { #expect(try await reopened.tokens.metadata(of: token).cvvExpiresAt == nil) }
            #expect(try await reopened.audit.verify().ok)
        }
    }

    @Test func rotateMasterToTheSameKeyRefuses() async throws {
        try await withVault { vault, sandbox in
            let copy = sandbox.path("copy.key")
            try Bytes.write(try Bytes.read(sandbox.paths.masterKeyPath), to: copy)
            let error = await #expect(throws: VaultError.self) { try await vault.rotateMaster(newKeyPath: copy) }
            #expect(error?.code == .sameMasterKey)
            #expect(!FileManager.default.fileExists(atPath: sandbox.paths.masterKeyPath + ".next"))
            _ = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
        }
    }

    /// A `rotate-master` that stopped after re-wrapping the key ring but before installing the
    /// new key file: the next open finishes it.
    @Test func interruptedRotateMasterIsCompletedOnOpen() async throws {
        try await withVault { vault, sandbox in
            let paths = sandbox.paths
            let tokens = try await KeyLifecycleTests.seed(vault, count: 5)
            let newMaster = SecretBytes(randomCount: 32)
            try MasterKeyFile.write(newMaster, to: paths.masterKeyPath + ".next")
            try await vault.keys.rewrapKeyRing(under: newMaster, by: .cli)

            let (logger, handler) = TestLog.capturing()
            let reopened = try await Vault.open(paths: paths, logger: logger)
            let installed = try Bytes.read(paths.masterKeyPath)
            #expect(installed == newMaster.withUnsafeBytes { Array($0) })
            #expect(try Bytes.mode(of: paths.masterKeyPath) == 0o600)
            #expect(!FileManager.default.fileExists(atPath: paths.masterKeyPath + ".next"))
            #expect(handler.entries.contains { "\($0.message)".contains("interrupted master-key rotation") })
            for token in tokens { try await reopened.tokens.verifyRecord(token) }
            // And once more, now as a plain open.
            _ = try await Vault.open(paths: paths, logger: TestLog.quiet())
        }
    }

    /// Stopped earlier: the new key was staged but the key ring not yet re-wrapped. The current
    /// key still opens the vault, and the stale staged key is left alone.
    @Test func stagedKeyThatWasNeverUsedIsIgnored() async throws {
        try await withVault { vault, sandbox in
            let paths = sandbox.paths
            let token = try await tokenize(.visa, in: vault.tokens).metadata.token
            let key = try Bytes.read(paths.masterKeyPath)
            try Bytes.write(Bytes.random(32), to: paths.masterKeyPath + ".next")
            let reopened = try await Vault.open(paths: paths, logger: TestLog.quiet())
            #expect(try Bytes.read(paths.masterKeyPath) == key)
            try await reopened.tokens.verifyRecord(token)

            // A later rotation replaces the stale staged file.
            let newKeyPath = sandbox.path("new.key")
            try Bytes.write(Bytes.random(32), to: newKeyPath)
            try await reopened.rotateMaster(newKeyPath: newKeyPath)
            #expect(try Bytes.read(paths.masterKeyPath) == Bytes.read(newKeyPath))
            _ = try await Vault.open(paths: paths, logger: TestLog.quiet())
        }
    }
}
