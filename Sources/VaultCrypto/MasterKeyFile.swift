#if canImport(Glibc)
    import Glibc

    private let systemWrite = Glibc.write
#elseif canImport(Darwin)
    import Darwin

    private let systemWrite = Darwin.write
#endif

/// Why a master key file was refused. The message names the file and the problem, never a
/// byte of the key.
public struct MasterKeyError: Error, Sendable, CustomStringConvertible {
    /// A stable code for the problem.
    public enum Code: String, Sendable {
        case missing = "master_key_missing"
        case notRegularFile = "master_key_not_a_file"
        case permissionsTooOpen = "master_key_permissions"
        case wrongSize = "master_key_wrong_size"
        case unreadable = "master_key_unreadable"
        case alreadyExists = "master_key_exists"
        case wrongKey = "master_key_wrong"
    }

    public let code: Code
    /// The file concerned.
    public let path: String
    /// What is wrong, for a person.
    public let problem: String

    public init(_ code: Code, path: String, problem: String) {
        self.code = code
        self.path = path
        self.problem = problem
    }

    public var description: String { "master key \(path): \(problem)" }
}

/// Loading and creating the master key (KEK) file: exactly 32 raw bytes, mode 0600.
///
/// The service refuses a key file that anyone but its owner can read or write (PCI DSS 3.6.1:
/// keys stored in the fewest places and forms, access restricted to custodians).
public enum MasterKeyFile {
    /// A master key is 32 bytes (a secretbox key).
    public static let byteCount = 32

    /// Reads and checks the key file at `path`.
    /// - Throws: ``MasterKeyError`` naming the file and the problem.
    public static func load(path: String) throws -> SecretBytes {
        // Open first, then check the opened file (fstat), so the file checked is the file read.
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT {
                throw MasterKeyError(
                    .missing, path: path, problem: "file not found (create one with `vault keys init`)")
            }
            throw MasterKeyError(.unreadable, path: path, problem: "cannot open file (errno \(errno))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw MasterKeyError(.unreadable, path: path, problem: "cannot stat file (errno \(errno))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw MasterKeyError(.notRegularFile, path: path, problem: "not a regular file")
        }
        let permissions = info.st_mode & 0o777
        guard permissions & 0o077 == 0 else {
            throw MasterKeyError(
                .permissionsTooOpen, path: path,
                problem: "mode \(String(permissions, radix: 8)) lets group or others access it; run `chmod 600 \(path)`"
            )
        }
        guard info.st_size == off_t(byteCount) else {
            throw MasterKeyError(
                .wrongSize, path: path,
                problem: "is \(info.st_size) bytes; a master key is exactly \(byteCount) raw bytes")
        }
        return try SecretBytes(count: byteCount) { buffer in
            var filled = 0
            while filled < byteCount {
                let n = read(fd, buffer.baseAddress! + filled, byteCount - filled)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw MasterKeyError(.unreadable, path: path, problem: "short read")
                }
                filled += n
            }
        }
    }

    /// Creates a new random master key at `path` (mode 0600) and returns it.
    /// - Throws: ``MasterKeyError`` with code `alreadyExists` if the file exists: a key is never
    ///   overwritten.
    public static func create(path: String) throws -> SecretBytes {
        let key = SecretBytes(randomCount: byteCount)
        try write(key, to: path)
        return key
    }

    /// Writes `key` to a new file at `path` with mode 0600, durably (file and directory synced).
    public static func write(_ key: SecretBytes, to path: String) throws {
        precondition(key.count == byteCount)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            if errno == EEXIST {
                throw MasterKeyError(
                    .alreadyExists, path: path, problem: "file already exists; refusing to overwrite a key")
            }
            throw MasterKeyError(.unreadable, path: path, problem: "cannot create file (errno \(errno))")
        }
        defer { close(fd) }
        // The umask may have narrowed the mode further; make it exactly 0600.
        fchmod(fd, 0o600)
        try key.withUnsafeBytes { bytes in
            var written = 0
            while written < bytes.count {
                let n = systemWrite(fd, bytes.baseAddress! + written, bytes.count - written)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw MasterKeyError(.unreadable, path: path, problem: "write failed (errno \(errno))")
                }
                written += n
            }
        }
        guard fsync(fd) == 0 else {
            throw MasterKeyError(.unreadable, path: path, problem: "fsync failed (errno \(errno))")
        }
        syncDirectory(containing: path)
    }

    /// Atomically replaces `destination` with `source` (rename), then syncs the directory.
    public static func install(_ source: String, as destination: String) throws {
        guard rename(source, destination) == 0 else {
            throw MasterKeyError(
                .unreadable, path: destination, problem: "cannot rename \(source) into place (errno \(errno))")
        }
        syncDirectory(containing: destination)
    }

    private static func syncDirectory(containing path: String) {
        let directory: String
        if let slash = path.lastIndex(of: "/") {
            directory = slash == path.startIndex ? "/" : String(path[..<slash])
        } else {
            directory = "."
        }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
