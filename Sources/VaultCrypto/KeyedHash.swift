import CSodium

/// Keyed BLAKE2b (`crypto_generichash` with a key): fingerprints and MACs.
///
/// With a secret key this is a PRF, so a fingerprint of a card number cannot be brute-forced
/// over the small PAN space without the key (PCI DSS 3.5.1.1 forbids unkeyed hashes of PANs).
public enum KeyedHash {
    /// Key length used throughout the vault (`crypto_generichash_KEYBYTES`).
    public static let keyByteCount = 32
    /// Smallest and largest output lengths BLAKE2b allows.
    public static let outputByteRange = 16...64

    /// Hashes `message` under `key` into `output` (16 to 64 bytes).
    public static func hash(
        _ message: UnsafeRawBufferPointer,
        key: SecretBytes,
        into output: UnsafeMutableRawBufferPointer
    ) {
        precondition(outputByteRange.contains(output.count), "BLAKE2b output must be 16...64 bytes")
        precondition((16...64).contains(key.count), "BLAKE2b key must be 16...64 bytes")
        Sodium.ensureInitialized()
        var empty: UInt8 = 0
        let rc = key.withUnsafeBytes { keyBytes in
            withUnsafeMutablePointer(to: &empty) { emptyPointer in
                crypto_generichash(
                    output.baseAddress!.assumingMemoryBound(to: UInt8.self), output.count,
                    message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(emptyPointer),
                    UInt64(message.count),
                    keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self), keyBytes.count
                )
            }
        }
        precondition(rc == 0, "crypto_generichash failed")
    }

    /// Hashes `message` under `key`.
    /// - Returns: `outputByteCount` bytes (default 32).
    public static func hash(_ message: UnsafeRawBufferPointer, key: SecretBytes, outputByteCount: Int = 32) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: outputByteCount) { output, initialized in
            hash(message, key: key, into: UnsafeMutableRawBufferPointer(output))
            initialized = outputByteCount
        }
    }

    /// Hashes the bytes of `message` under `key`.
    public static func hash(_ message: some ContiguousBytesView, key: SecretBytes, outputByteCount: Int = 32) -> [UInt8]
    {
        message.withBytes { hash($0, key: key, outputByteCount: outputByteCount) }
    }
}
