import CSodium

/// Secret bytes (keys, decrypted card data) that wipe themselves.
///
/// By default (``Protection/guarded``) the bytes live in memory from `sodium_malloc`:
/// page-aligned behind a guard page, locked against swapping, excluded from core dumps, and
/// zeroed by `sodium_free` when the last reference goes away. That costs several system calls
/// (mmap, mprotect, mlock), right for keys that live long; short-lived scratch buffers on hot
/// paths use ``Protection/wipedOnRelease`` instead: ordinary heap memory that is zeroed with
/// `sodium_memzero` before it is freed, as swift-crypto's `SecureBytes` does. There is no way to get the bytes out as an `Array`, `String` or
/// `Data`; access is only through ``withUnsafeBytes(_:)``. The type is deliberately neither
/// `Codable` nor printable, and `==` runs in constant time.
public final class SecretBytes: @unchecked Sendable {
    // @unchecked: the buffer is written only during initialisation (or through the
    // explicitly unsafe mutable accessor by the owner that created it); afterwards it is
    // read-only, so sharing across tasks is safe.
    private let pointer: UnsafeMutableRawPointer
    private let protection: Protection
    /// The number of secret bytes.
    public let count: Int

    /// How the memory is protected.
    public enum Protection: Sendable {
        /// `sodium_malloc`: guard pages, mlock, no core dumps, zeroed on release. For keys.
        case guarded
        /// Heap memory zeroed on release. For short-lived scratch buffers on hot paths.
        case wipedOnRelease
    }

    /// Allocates `count` zeroed bytes (zero is allowed: an empty secret).
    public init(zeroedCount count: Int, protection: Protection = .guarded) {
        precondition(count >= 0, "SecretBytes needs a non-negative size")
        Sodium.ensureInitialized()
        switch protection {
        case .guarded:
            // sodium_malloc returns nil only when the system cannot map pages; treat that like
            // any other allocation failure.
            guard let pointer = sodium_malloc(count) else {
                fatalError("sodium_malloc failed: out of memory")
            }
            self.pointer = pointer
        case .wipedOnRelease:
            self.pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 16)
        }
        sodium_memzero(pointer, count)
        self.protection = protection
        self.count = count
    }

    /// Allocates `count` bytes and lets `initializer` fill them in place, so the secret is
    /// never staged in ordinary memory.
    public convenience init(
        count: Int,
        initializingWith initializer: (UnsafeMutableRawBufferPointer) throws -> Void
    ) rethrows {
        self.init(zeroedCount: count)
        try initializer(UnsafeMutableRawBufferPointer(start: pointer, count: count))
    }

    /// Fresh random bytes from libsodium's CSPRNG, e.g. a new key.
    public convenience init(randomCount count: Int) {
        self.init(zeroedCount: count)
        randombytes_buf(pointer, count)
    }

    /// Copies `bytes` into guarded memory. The caller remains responsible for wiping its copy.
    public convenience init(copying bytes: UnsafeRawBufferPointer) {
        self.init(zeroedCount: bytes.count)
        if let base = bytes.baseAddress, bytes.count > 0 {
            pointer.copyMemory(from: base, byteCount: bytes.count)
        }
    }

    deinit {
        switch protection {
        case .guarded:
            // sodium_free zeroes the region before unmapping it.
            sodium_free(pointer)
        case .wipedOnRelease:
            sodium_memzero(pointer, count)
            pointer.deallocate()
        }
    }

    /// Calls `body` with read access to the secret bytes. Do not let the pointer escape.
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    /// Calls `body` with write access. For reusable scratch buffers owned by one task.
    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(start: pointer, count: count))
    }

    /// Zeroes the bytes now (they are zeroed again on release).
    public func wipe() {
        sodium_memzero(pointer, count)
    }
}

extension SecretBytes: Equatable {
    /// Constant-time comparison (`sodium_memcmp`); sizes are not secret.
    public static func == (lhs: SecretBytes, rhs: SecretBytes) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return sodium_memcmp(lhs.pointer, rhs.pointer, lhs.count) == 0
    }
}

extension SecretBytes: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "SecretBytes(\(count) bytes, redacted)" }
    public var debugDescription: String { description }
}
