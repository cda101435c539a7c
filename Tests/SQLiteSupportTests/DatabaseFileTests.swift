import Foundation
import GRDB
import SQLiteSupport
import Synchronization
import Testing

/// A temporary folder of its own for `body`, removed afterwards. The folder itself does not
/// exist yet: the opener under test creates it.
func withTemporaryFolder<R>(_ body: (String) async throws -> R) async throws -> R {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent("sqlite-support-\(UUID().uuidString)")
        .path
    defer { try? FileManager.default.removeItem(atPath: root) }
    return try await body(root)
}

/// The permission bits of `path`.
func mode(of path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    guard let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue else {
        throw FileModeError(path: path)
    }
    return mode
}

struct FileModeError: Error, CustomStringConvertible {
    var path: String
    var description: String { "no permissions for \(path)" }
}

/// Expects `path` and its `-wal` and `-shm` to exist and be owner-only (0600), and its folder 0700.
func expectOwnerOnly(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    for file in DatabaseFile.files(of: path) {
        #expect(FileManager.default.fileExists(atPath: file), "\(file) is missing", sourceLocation: sourceLocation)
        let found = try mode(of: file)
        #expect(found == 0o600, "\(file) has mode \(String(found, radix: 8))", sourceLocation: sourceLocation)
    }
    let folder = (path as NSString).deletingLastPathComponent
    let found = try mode(of: folder)
    #expect(found == 0o700, "\(folder) has mode \(String(found, radix: 8))", sourceLocation: sourceLocation)
}

@Suite("Database files: one opener, owner-only from the start")
struct DatabaseFileTests {
    @Test("the opener creates the folder and its parents 0700, and the database is 0600 before SQLite opens it")
    func createsOwnerOnly() async throws {
        try await withTemporaryFolder { root in
            let directory = root + "/a/b"
            // Read from the first connection SQLite opens, before anything is written.
            let path = directory + "/test.db"
            let modeAtFirstOpen = Mutex<Int?>(nil)
            var configuration = Configuration()
            configuration.prepareDatabase { _ in
                modeAtFirstOpen.withLock { $0 = $0 ?? (try? mode(of: path)) }
            }
            let pool = try DatabaseFile.openDurablePool(
                directory: directory, fileName: "test.db", configuration: configuration)
            try await pool.write { db in try db.execute(sql: "CREATE TABLE t (x)") }
            #expect(modeAtFirstOpen.withLock { $0 } == 0o600)
            try expectOwnerOnly(path)
            #expect(try mode(of: root + "/a") == 0o700)
            #expect(try mode(of: root) == 0o700)
        }
    }

    @Test("an existing database, -wal and -shm readable by others are made owner-only before SQLite opens them")
    func tightensExistingFiles() async throws {
        try await withTemporaryFolder { root in
            let path = root + "/test.db"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            for file in DatabaseFile.files(of: path) {
                #expect(FileManager.default.createFile(atPath: file, contents: nil))
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file)
            }
            let modesAtFirstOpen = Mutex<[Int]?>(nil)
            var configuration = Configuration()
            configuration.prepareDatabase { _ in
                modesAtFirstOpen.withLock { $0 = $0 ?? DatabaseFile.files(of: path).map { (try? mode(of: $0)) ?? -1 } }
            }
            let pool = try DatabaseFile.openDurablePool(
                directory: root, fileName: "test.db", configuration: configuration)
            try await pool.write { db in try db.execute(sql: "CREATE TABLE t (x)") }
            #expect(modesAtFirstOpen.withLock { $0 } == [0o600, 0o600, 0o600])
            for file in DatabaseFile.files(of: path) {
                #expect(try mode(of: file) == 0o600, "\(file)")
            }
        }
    }

    @Test("the writer runs synchronous = FULL in WAL mode, then the caller's writer pragmas")
    func durableSettings() async throws {
        try await withTemporaryFolder { root in
            var configuration = Configuration()
            configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA cache_size = -1234") }
            let pool = try DatabaseFile.openDurablePool(
                directory: root, fileName: "test.db", configuration: configuration,
                writerPragmas: "PRAGMA wal_autocheckpoint = 4321; PRAGMA journal_size_limit = 1048576")
            let settings = try await pool.writeWithoutTransaction { db in
                [
                    try Int.fetchOne(db, sql: "PRAGMA synchronous"),
                    try Int.fetchOne(db, sql: "PRAGMA wal_autocheckpoint"),
                    try Int.fetchOne(db, sql: "PRAGMA journal_size_limit"),
                    try Int.fetchOne(db, sql: "PRAGMA cache_size"),
                ]
            }
            // synchronous: 2 is FULL.
            #expect(settings == [2, 4321, 1_048_576, -1234])
            let journalMode = try await pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
            #expect(journalMode == "wal")
        }
    }

    @Test("a folder that cannot be created is a DatabaseFileError naming it")
    func unwritableFolder() async throws {
        let error = #expect(throws: DatabaseFileError.self) {
            try DatabaseFile.openDurablePool(
                directory: "/dev/null/none", fileName: "test.db", configuration: Configuration())
        }
        #expect(error?.description.contains("/dev/null/none") == true, "\(String(describing: error))")
    }
}
