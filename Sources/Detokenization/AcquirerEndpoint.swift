import Foundation
import SQLiteSupport

/// Why an acquirer endpoint could not be configured. Messages name the setting or file and the
/// problem, never key bytes.
public struct AcquirerEndpointError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable code for the problem.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let rawValue: String
        private init(_ rawValue: String) { self.rawValue = rawValue }

        /// The base URL is not an absolute `http` or `https` URL with a host.
        public static let invalidURL = Self("acquirer_url_invalid")
        /// The public key file does not exist.
        public static let publicKeyMissing = Self("acquirer_public_key_missing")
        /// The public key file cannot be read, or is not a regular file.
        public static let publicKeyUnreadable = Self("acquirer_public_key_unreadable")
        /// The public key is not exactly 32 bytes.
        public static let publicKeyWrongSize = Self("acquirer_public_key_wrong_size")
        /// The public key file is writable by group or others: anyone who could replace it would
        /// receive every card block.
        public static let publicKeyUnsafe = Self("acquirer_public_key_unsafe")
        /// The public key is not the one pinned (`--acquirer-key-pin`).
        public static let publicKeyPinMismatch = Self("acquirer_public_key_pin_mismatch")
        /// The timeout is not positive.
        public static let invalidTimeout = Self("acquirer_timeout_invalid")

        public var description: String { rawValue }
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "AcquirerEndpointError(\(code): \(message))" }
}

/// Where the authorization gateway sends authorizations: the acquirer's base URL, the public key
/// its card blocks are sealed to (`crypto_box_seal`, X25519), and how long to wait for an answer.
public struct AcquirerEndpoint: Sendable, Hashable {
    /// The size of an X25519 public key.
    public static let publicKeyByteCount = 32
    /// The default ``timeout``.
    public static let defaultTimeout: Duration = .seconds(5)

    /// e.g. `http://127.0.0.1:8090`, without a trailing `/`; the gateway posts to
    /// `{baseURL}/v1/authorizations`.
    public let baseURL: String
    /// The acquirer's 32-byte public key.
    public let publicKey: [UInt8]
    /// How long an authorization may take, connection included; past it the outcome is
    /// `acquirer_timeout` (unknown: retry with the same reference).
    public let timeout: Duration

    /// - Throws: ``AcquirerEndpointError`` for a URL that is not `http(s)://host[:port][/path]`,
    ///   a key that is not 32 bytes, or a timeout that is not positive.
    public init(baseURL: String, publicKey: [UInt8], timeout: Duration = defaultTimeout) throws(AcquirerEndpointError) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        guard let url = URL(string: base), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = url.host, !host.isEmpty, url.query == nil, url.fragment == nil, url.user == nil
        else {
            throw AcquirerEndpointError(
                .invalidURL, "the acquirer URL must be http(s)://host[:port][/path], without query or credentials")
        }
        guard publicKey.count == Self.publicKeyByteCount else {
            throw AcquirerEndpointError(
                .publicKeyWrongSize,
                "the acquirer public key is \(publicKey.count) bytes; an X25519 public key is \(Self.publicKeyByteCount)"
            )
        }
        guard timeout > .zero else {
            throw AcquirerEndpointError(.invalidTimeout, "the acquirer timeout must be positive")
        }
        self.baseURL = base
        self.publicKey = publicKey
        self.timeout = timeout
    }

    /// Reads the public key from `publicKeyFile`: the acquirer's `acquirer.pub`, exactly 32 raw
    /// bytes (docs/CRYPTO.md, "Acquirer authorization"), in a file no one but its owner may
    /// write.
    /// - Parameter pin: the key's 64 hex digits, if the operator pinned it: another key is refused.
    /// - Throws: ``AcquirerEndpointError`` naming the file and the problem.
    public init(
        baseURL: String, publicKeyFile: String, timeout: Duration = defaultTimeout, pin: String? = nil
    )
        throws(AcquirerEndpointError)
    {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: publicKeyFile, isDirectory: &isDirectory) else {
            throw AcquirerEndpointError(
                .publicKeyMissing,
                "acquirer public key \(publicKeyFile): file not found (`vault acquirer-sim` writes acquirer.pub)")
        }
        // Checked on the open file (no swap between the check and the read): a regular file, not
        // writable by group or others, owned by this user or root, in a folder others cannot
        // write to (unless sticky, as /tmp is: others cannot replace a file there).
        guard !isDirectory.boolValue, let handle = FileHandle(forReadingAtPath: publicKeyFile) else {
            throw AcquirerEndpointError(
                .publicKeyUnreadable, "acquirer public key \(publicKeyFile): not a readable regular file")
        }
        defer { try? handle.close() }
        var status = stat()
        guard fstat(handle.fileDescriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG,
            let data = try? handle.readToEnd()
        else {
            throw AcquirerEndpointError(
                .publicKeyUnreadable, "acquirer public key \(publicKeyFile): not a readable regular file")
        }
        var folder = stat()
        let folderPath = (publicKeyFile as NSString).deletingLastPathComponent
        guard status.st_mode & 0o022 == 0, status.st_uid == getuid() || status.st_uid == 0,
            stat(folderPath.isEmpty ? "." : folderPath, &folder) == 0,
            folder.st_mode & 0o022 == 0 || folder.st_mode & S_ISVTX != 0
        else {
            throw AcquirerEndpointError(
                .publicKeyUnsafe,
                "acquirer public key \(publicKeyFile): it or its folder is writable by group or others, or it is "
                    + "owned by another user; run chmod go-w on both")
        }
        guard data.count == Self.publicKeyByteCount else {
            throw AcquirerEndpointError(
                .publicKeyWrongSize,
                "acquirer public key \(publicKeyFile): is \(data.count) bytes; it must be exactly "
                    + "\(Self.publicKeyByteCount) raw bytes")
        }
        let key = [UInt8](data)
        if let pin, pin.lowercased() != Hex.encode(key) {
            throw AcquirerEndpointError(
                .publicKeyPinMismatch,
                "acquirer public key \(publicKeyFile): is not the pinned key (--acquirer-key-pin); "
                    + "it is \(Hex.encode(key))")
        }
        try self.init(baseURL: baseURL, publicKey: key, timeout: timeout)
    }

    /// The public key in lower-case hex, as `--acquirer-key-pin` takes it.
    public var publicKeyHex: String { Hex.encode(publicKey) }
}
