import Foundation
import Testing

@testable import VaultCrypto

/// A fresh directory under the system temporary directory, removed by ``remove()``.
struct TemporaryDirectory {
    let path: String

    init() throws {
        let template = FileManager.default.temporaryDirectory
            .appendingPathComponent("vaultcrypto-tests.XXXXXX").path
        var buffer = Array(template.utf8CString)
        let created = buffer.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) != nil }
        try #require(created, "mkdtemp failed")
        path = String(decoding: buffer.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

@Suite struct MasterKeyFileTests {
    /// A key of 32 × 0x41 ('A'): easy to spot in a message that leaks it.
    static let recognisableKey = TestBytes.secret([UInt8](repeating: 0x41, count: 32))

    @Test func createWritesA32ByteFileWithMode0600() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("master.key")

        let key = try MasterKeyFile.create(path: path)
        #expect(key.count == 32)
        #expect(key != SecretBytes(zeroedCount: 32))

        let info = try Self.fileStatus(path)
        #expect(info.st_mode & S_IFMT == S_IFREG)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(info.st_size == 32)
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(TestBytes.reveal(key)))

        let loaded = try MasterKeyFile.load(path: path)
        #expect(loaded == key)
    }

    @Test func createRefusesToOverwrite() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("master.key")
        let key = try MasterKeyFile.create(path: path)

        let error = #expect(throws: MasterKeyError.self) { try MasterKeyFile.create(path: path) }
        #expect(error?.code == .alreadyExists)
        #expect(error?.path == path)
        #expect(error?.description.contains(path) == true)
        Self.expectNoKeyBytes(in: error, key: key)
        // The original key is untouched.
        #expect(try MasterKeyFile.load(path: path) == key)

        let writeError = #expect(throws: MasterKeyError.self) {
            try MasterKeyFile.write(Self.recognisableKey, to: path)
        }
        #expect(writeError?.code == .alreadyExists)
        #expect(try MasterKeyFile.load(path: path) == key)
    }

    @Test func writeThenLoadRoundTrips() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("master.key")
        try MasterKeyFile.write(Self.recognisableKey, to: path)
        #expect(try Self.fileStatus(path).st_mode & 0o777 == 0o600)
        #expect(try MasterKeyFile.load(path: path) == Self.recognisableKey)
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o660, 0o606, 0o666, 0o777, 0o610, 0o601, 0o620, 0o602])
    func loadRefusesGroupOrOtherAccess(_ mode: Int) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("master.key")
        try MasterKeyFile.write(Self.recognisableKey, to: path)
        #expect(chmod(path, mode_t(mode)) == 0)

        let error = #expect(throws: MasterKeyError.self) { try MasterKeyFile.load(path: path) }
        #expect(error?.code == .permissionsTooOpen)
        #expect(error?.path == path)
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains(String(mode, radix: 8)) == true)
        Self.expectNoKeyBytes(in: error, key: Self.recognisableKey)
    }

    @Test(arguments: [0o600, 0o400, 0o700])
    func loadAcceptsOwnerOnlyModes(_ mode: Int) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("master.key")
        try MasterKeyFile.write(Self.recognisableKey, to: path)
        #expect(chmod(path, mode_t(mode)) == 0)
        #expect(try MasterKeyFile.load(path: path) == Self.recognisableKey)
    }

    @Test(arguments: [0, 1, 31, 33, 64])
    func loadRefusesWrongSize(_ size: Int) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("master.key")
        let contents = [UInt8](repeating: 0x41, count: size)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(contents)))
        #expect(chmod(path, 0o600) == 0)

        let error = #expect(throws: MasterKeyError.self) { try MasterKeyFile.load(path: path) }
        #expect(error?.code == .wrongSize)
        #expect(error?.path == path)
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains("\(size) bytes") == true)
        Self.expectNoKeyBytes(in: error, key: Self.recognisableKey)
    }

    @Test func loadReportsMissingFile() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("absent.key")
        let error = #expect(throws: MasterKeyError.self) { try MasterKeyFile.load(path: path) }
        #expect(error?.code == .missing)
        #expect(error?.description.contains(path) == true)
    }

    @Test func loadRefusesADirectory() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("master.key")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        #expect(chmod(path, 0o700) == 0)
        let error = #expect(throws: MasterKeyError.self) { try MasterKeyFile.load(path: path) }
        #expect(error?.code == .notRegularFile)
        #expect(error?.description.contains(path) == true)

        // Creating a key where a directory stands fails too, without touching the directory.
        let createError = #expect(throws: MasterKeyError.self) { try MasterKeyFile.create(path: path) }
        #expect(createError?.code == .alreadyExists)
    }

    @Test func createInMissingDirectoryFails() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("no/such/dir/master.key")
        let error = #expect(throws: MasterKeyError.self) { try MasterKeyFile.create(path: path) }
        #expect(error?.code == .unreadable)
        #expect(error?.description.contains(path) == true)
    }

    @Test func installReplacesTheKeyAtomically() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.file("master.key")
        let staged = directory.file("master.key.new")
        let old = try MasterKeyFile.create(path: path)
        let new = try MasterKeyFile.create(path: staged)
        #expect(old != new)

        try MasterKeyFile.install(staged, as: path)
        #expect(try MasterKeyFile.load(path: path) == new)
        #expect(!FileManager.default.fileExists(atPath: staged))
        #expect(try Self.fileStatus(path).st_mode & 0o777 == 0o600)

        let error = #expect(throws: MasterKeyError.self) { try MasterKeyFile.install(staged, as: path) }
        #expect(error?.code == .unreadable)
        #expect(error?.path == path)
        #expect(try MasterKeyFile.load(path: path) == new)
    }

    @Test func errorCodesAreStable() {
        #expect(MasterKeyError.Code.missing.rawValue == "master_key_missing")
        #expect(MasterKeyError.Code.notRegularFile.rawValue == "master_key_not_a_file")
        #expect(MasterKeyError.Code.permissionsTooOpen.rawValue == "master_key_permissions")
        #expect(MasterKeyError.Code.wrongSize.rawValue == "master_key_wrong_size")
        #expect(MasterKeyError.Code.alreadyExists.rawValue == "master_key_exists")
        let error = MasterKeyError(.missing, path: "/x/y", problem: "gone")
        #expect(error.description == "master key /x/y: gone")
    }

    // MARK: Helpers

    static func fileStatus(_ path: String) throws -> stat {
        var info = stat()
        try #require(stat(path, &info) == 0, "stat \(path) failed")
        return info
    }

    /// Checks that neither the hex form nor the raw bytes of `key` appear in the error's
    /// description or problem text (the path, which the test chose, is excluded first).
    static func expectNoKeyBytes(
        in error: MasterKeyError?, key: SecretBytes, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard let error else { return }
        let keyBytes = TestBytes.reveal(key)
        let hex = TestBytes.hex(of: keyBytes)
        let raw = String(decoding: keyBytes, as: UTF8.self)
        for text in [error.description, error.problem, String(reflecting: error)] {
            let withoutPath = text.replacingOccurrences(of: error.path, with: "<path>")
            #expect(!withoutPath.lowercased().contains(hex), sourceLocation: sourceLocation)
            #expect(!withoutPath.contains(raw), sourceLocation: sourceLocation)
            // Any 4-byte window of the key, in hex or raw (for the 0x41 key: "41414141", "AAAA").
            for start in 0...(keyBytes.count - 4) {
                let window = Array(keyBytes[start..<start + 4])
                #expect(!withoutPath.lowercased().contains(TestBytes.hex(of: window)), sourceLocation: sourceLocation)
                #expect(!withoutPath.contains(String(decoding: window, as: UTF8.self)), sourceLocation: sourceLocation)
            }
        }
    }
}
