import CSodium

/// The operating system's CSPRNG through libsodium (`randombytes_buf`, i.e. `getrandom(2)`).
public enum SecureRandom {
    /// Fills `buffer` with random bytes.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        Sodium.ensureInitialized()
        randombytes_buf(base, buffer.count)
    }

    /// `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }

    /// A uniformly distributed number in `0..<upperBound` (no modulo bias).
    public static func uniform(_ upperBound: UInt32) -> UInt32 {
        Sodium.ensureInitialized()
        return randombytes_uniform(upperBound)
    }
}

/// A block of random bytes drawn from the CSPRNG at once and handed out piece by piece.
///
/// Linux `getrandom(2)` costs a system call per call (over half of a secretbox seal, see
/// docs/CRYPTO.md). A pool seeds itself with 32 bytes from the OS and expands them with
/// `randombytes_buf_deterministic` (ChaCha20), so a batch of 1,000 tokens needs one system
/// call instead of two thousand. The output is as unpredictable as the seed; the seed is
/// wiped as soon as it has been expanded. A pool belongs to one task.
public struct RandomPool: ~Copyable {
    private let storage: UnsafeMutableRawBufferPointer
    private var offset: Int

    /// Draws `byteCount` random bytes now.
    public init(byteCount: Int) {
        precondition(byteCount > 0)
        Sodium.ensureInitialized()
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: byteCount, alignment: 16)
        offset = 0
        let seed = SecretBytes(zeroedCount: Int(randombytes_SEEDBYTES), protection: .wipedOnRelease)
        seed.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) }
        seed.withUnsafeBytes { seedBytes in
            randombytes_buf_deterministic(
                storage.baseAddress!, byteCount, seedBytes.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
    }

    deinit {
        ConstantTime.wipe(storage)
        storage.deallocate()
    }

    /// The bytes not yet handed out.
    public var remaining: Int { storage.count - offset }

    /// Hands `count` fresh bytes to `body`; the bytes are never handed out again.
    public mutating func take<R>(_ count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(count <= remaining, "RandomPool exhausted")
        defer { offset += count }
        return try body(UnsafeRawBufferPointer(rebasing: storage[offset..<offset + count]))
    }
}
