public import VaultCrypto

#if canImport(Glibc)
    import Glibc

    private let systemWrite = Glibc.write
#elseif canImport(Darwin)
    import Darwin

    private let systemWrite = Darwin.write
#endif

/// Why the acquirer's key files were refused. The message names the file and the problem, never
/// a byte of a key.
public struct AcquirerKeyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable code for the problem.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// A key file is missing where one is needed.
        public static let missing = Self("acquirer_key_missing")
        /// A key file is not a regular file.
        public static let notRegularFile = Self("acquirer_key_not_a_file")
        /// `acquirer.key` can be read or written by group or others.
        public static let permissionsTooOpen = Self("acquirer_key_permissions")
        /// A key file is not exactly 32 bytes.
        public static let wrongSize = Self("acquirer_key_wrong_size")
        /// `acquirer.pub` is not the public half of `acquirer.key`.
        public static let mismatch = Self("acquirer_key_mismatch")
        /// A key file or the folder could not be read, created or written.
        public static let unreadable = Self("acquirer_key_unreadable")

        public var description: String { rawValue }
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

    public var description: String { "acquirer key \(path): \(problem)" }
}

/// The acquirer's sealed-box key pair (`crypto_box`, X25519): the vault seals card blocks (and,
/// later, settlement files) to the public key; only the acquirer can open them.
///
/// Files in the state folder (docs/CRYPTO.md, "Acquirer authorization"):
/// - `acquirer.key`: the 32 raw bytes of the X25519 secret key, mode 0600. A file that group or
///   others can access, or of another size, is refused.
/// - `acquirer.pub`: the 32 raw bytes of the public key, mode 0644; it must be the public half
///   of `acquirer.key`. This is the file the vault's `--acquirer-public-key` reads.
public struct AcquirerKeyPair: Sendable {
    /// The secret key's file name inside the state folder.
    public static let secretKeyFileName = "acquirer.key"
    /// The public key's file name inside the state folder.
    public static let publicKeyFileName = "acquirer.pub"

    /// The key pair; the secret half stays in guarded memory.
    public let keyPair: SealedBox.KeyPair

    /// The 32-byte public key.
    public var publicKey: [UInt8] { keyPair.publicKey }

    public init(keyPair: SealedBox.KeyPair) {
        self.keyPair = keyPair
    }

    /// Loads the key pair from `directory`, creating it first (and the folder, mode 0700) if
    /// neither file exists.
    ///
    /// A missing `acquirer.pub` next to an existing `acquirer.key` is written again from the
    /// secret key; an `acquirer.pub` without its `acquirer.key` is refused (a new key would not
    /// match the public key the vault may already hold).
    /// - Throws: ``AcquirerKeyError`` naming the file and the problem.
    public static func loadOrCreate(directory: String) throws -> AcquirerKeyPair {
        if access(directory, F_OK) != 0 {
            guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
                throw AcquirerKeyError(.unreadable, path: directory, problem: "cannot create folder (errno \(errno))")
            }
        }
        let secretPath = path(directory, secretKeyFileName)
        let publicPath = path(directory, publicKeyFileName)
        let secretExists = access(secretPath, F_OK) == 0
        let publicExists = access(publicPath, F_OK) == 0
        if !secretExists {
            guard !publicExists else {
                throw AcquirerKeyError(
                    .missing, path: secretPath,
                    problem: "file not found, but \(publicKeyFileName) exists; restore the key or remove both files")
            }
            let keyPair = SealedBox.KeyPair.generate()
            try keyPair.secretKey.withUnsafeBytes { try write($0, to: secretPath, mode: 0o600) }
            try keyPair.publicKey.withUnsafeBytes { try write($0, to: publicPath, mode: 0o644) }
            syncDirectory(directory)
            return AcquirerKeyPair(keyPair: keyPair)
        }
        let secretKey = try readKeyFile(secretPath, secret: true)
        let keyPair: SealedBox.KeyPair
        do {
            keyPair = try SealedBox.KeyPair(secretKey: secretKey)
        } catch {
            throw AcquirerKeyError(.wrongSize, path: secretPath, problem: "is not a usable X25519 secret key")
        }
        if publicExists {
            let stored = try readKeyFile(publicPath, secret: false)
            guard ConstantTime.equals(stored, keyPair.publicKey) else {
                throw AcquirerKeyError(
                    .mismatch, path: publicPath,
                    problem: "is not the public key of \(secretKeyFileName); remove it to have it written again")
            }
        } else {
            try keyPair.publicKey.withUnsafeBytes { try write($0, to: publicPath, mode: 0o644) }
            syncDirectory(directory)
        }
        return AcquirerKeyPair(keyPair: keyPair)
    }

    /// Reads a public key file written by ``loadOrCreate(directory:)`` (32 raw bytes).
    /// - Throws: ``AcquirerKeyError`` naming the file and the problem.
    public static func readPublicKey(path: String) throws -> [UInt8] {
        try readKeyFile(path, secret: false).withUnsafeBytes { [UInt8]($0) }
    }

    static func path(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    /// Opens first, then checks the opened file (fstat), so the file checked is the file read.
    private static func readKeyFile(_ path: String, secret: Bool) throws -> SecretBytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw AcquirerKeyError(.missing, path: path, problem: "file not found") }
            throw AcquirerKeyError(.unreadable, path: path, problem: "cannot open file (errno \(errno))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw AcquirerKeyError(.unreadable, path: path, problem: "cannot stat file (errno \(errno))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw AcquirerKeyError(.notRegularFile, path: path, problem: "not a regular file")
        }
        let permissions = info.st_mode & 0o777
        if secret, permissions & 0o077 != 0 {
            throw AcquirerKeyError(
                .permissionsTooOpen, path: path,
                problem: "mode \(String(permissions, radix: 8)) lets group or others access it; run `chmod 600 \(path)`"
            )
        }
        guard info.st_size == off_t(SealedBox.keyByteCount) else {
            throw AcquirerKeyError(
                .wrongSize, path: path,
                problem: "is \(info.st_size) bytes; a key file holds exactly \(SealedBox.keyByteCount) raw bytes")
        }
        return try SecretBytes(count: SealedBox.keyByteCount) { buffer in
            var filled = 0
            while filled < buffer.count {
                let n = read(fd, buffer.baseAddress! + filled, buffer.count - filled)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw AcquirerKeyError(.unreadable, path: path, problem: "short read") }
                filled += n
            }
        }
    }

    /// Writes a new file (never overwrites), with exactly `mode`, durably.
    private static func write(_ bytes: UnsafeRawBufferPointer, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else {
            throw AcquirerKeyError(.unreadable, path: path, problem: "cannot create file (errno \(errno))")
        }
        defer { close(fd) }
        // The umask may have narrowed the mode; make it exactly `mode`.
        fchmod(fd, mode)
        var written = 0
        while written < bytes.count {
            let n = systemWrite(fd, bytes.baseAddress! + written, bytes.count - written)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw AcquirerKeyError(.unreadable, path: path, problem: "write failed (errno \(errno))")
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            throw AcquirerKeyError(.unreadable, path: path, problem: "fsync failed (errno \(errno))")
        }
    }

    private static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
