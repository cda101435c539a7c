public import Foundation
public import GRDB

/// The one way the project opens a database file (`vault.db`, `wallet.db`, `acquirer.db`): in
/// an owner-only folder, owner-only from before SQLite first opens it, in WAL mode with
/// `synchronous = FULL` on the writer (a commit is on disk before it is acknowledged).
public enum DatabaseFile {
    /// The mode of every database file and of its `-wal` and `-shm` files.
    public static let fileMode: mode_t = 0o600
    /// The mode of a folder this creates for a database.
    public static let directoryMode: mode_t = 0o700

    /// The database at `path` and the files SQLite keeps beside it in WAL mode.
    public static func files(of path: String) -> [String] {
        [path, path + "-wal", path + "-shm"]
    }

    /// Opens (and creates, with its folder, if missing) `fileName` in `directory` as a WAL
    /// `DatabasePool`.
    ///
    /// 1. A missing `directory` is created 0700, with any missing parents (an existing one is
    ///    left as it is).
    /// 2. A missing database is created empty with mode 0600 before SQLite opens it; an existing
    ///    database, `-wal` or `-shm` is made 0600. SQLite gives the `-wal` and `-shm` files it
    ///    creates the database's mode, so none of the three is ever readable by others, whatever
    ///    the umask.
    /// 3. The pool is opened with `configuration`: each database keeps its own busy timeout,
    ///    label and per-connection pragmas (`prepareDatabase`).
    /// 4. On the writer: `PRAGMA synchronous = FULL` (GRDB's WAL set-up, which runs after
    ///    `prepareDatabase`, turns the writer to `NORMAL`), then `writerPragmas`, if any.
    ///
    /// - Throws: ``DatabaseFileError`` if the folder or the file cannot be created or made
    ///   owner-only; GRDB's `DatabaseError` if SQLite cannot open it or a pragma fails.
    public static func openDurablePool(
        directory: String, fileName: String, configuration: Configuration, writerPragmas: String? = nil
    ) throws -> DatabasePool {
        try createDirectory(directory)
        let path = (directory as NSString).appendingPathComponent(fileName)
        try createOwnerOnly(path)
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            if let writerPragmas { try db.execute(sql: writerPragmas) }
        }
        return pool
    }

    /// Creates `directory` and any missing parents, each with exactly mode 0700.
    static func createDirectory(_ directory: String) throws {
        var info = stat()
        guard stat(directory, &info) != 0 else { return }
        let parent = (directory as NSString).deletingLastPathComponent
        if !parent.isEmpty, parent != directory { try createDirectory(parent) }
        guard mkdir(directory, directoryMode) == 0 else {
            // Another process may have created it meanwhile.
            if errno == EEXIST { return }
            throw DatabaseFileError(path: directory, problem: "cannot create the folder", errno: errno)
        }
        // The umask may have narrowed the mode; make it exactly 0700.
        guard chmod(directory, directoryMode) == 0 else {
            throw DatabaseFileError(path: directory, problem: "cannot make the folder owner-only", errno: errno)
        }
    }

    /// Creates the database at `path` empty with exactly mode 0600 if it is missing, and makes
    /// an existing database, `-wal` and `-shm` 0600, all before SQLite opens any of them.
    static func createOwnerOnly(_ path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, fileMode)
        if fd >= 0 {
            defer { close(fd) }
            // The umask may have narrowed the mode; make it exactly 0600.
            guard fchmod(fd, fileMode) == 0 else {
                throw DatabaseFileError(path: path, problem: "cannot make the database owner-only", errno: errno)
            }
        } else if errno != EEXIST {
            throw DatabaseFileError(path: path, problem: "cannot create the database", errno: errno)
        }
        for file in files(of: path) where chmod(file, fileMode) != 0 && errno != ENOENT {
            throw DatabaseFileError(path: file, problem: "cannot make the file owner-only", errno: errno)
        }
    }
}

/// A database file or its folder could not be created or made owner-only.
public struct DatabaseFileError: Error, CustomStringConvertible {
    public let path: String
    public let problem: String
    /// The `errno` of the failed call.
    public let errno: Int32

    public var description: String {
        "\(path): \(problem): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
