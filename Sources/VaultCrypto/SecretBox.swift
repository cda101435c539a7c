import CSodium

/// Authenticated secret-key encryption: libsodium `crypto_secretbox` (XSalsa20-Poly1305).
///
/// Boxes produced here are laid out as `nonce (24) ‖ MAC (16) ‖ ciphertext`, the "combined"
/// form of NaCl prefixed by its random nonce. `docs/CRYPTO.md` documents this byte by byte.
public enum SecretBox {
    /// Key length in bytes (`crypto_secretbox_KEYBYTES`).
    public static let keyByteCount = 32
    /// Nonce length in bytes (`crypto_secretbox_NONCEBYTES`).
    public static let nonceByteCount = 24
    /// Authentication tag length in bytes (`crypto_secretbox_MACBYTES`).
    public static let macByteCount = 16
    /// Bytes a box adds to its plaintext: nonce plus tag.
    public static let overhead = nonceByteCount + macByteCount

    /// The size of a box for a plaintext of `plaintextCount` bytes.
    public static func boxByteCount(plaintextCount: Int) -> Int { plaintextCount + overhead }

    /// Encrypts `plaintext` under `key` with a fresh random nonce.
    /// - Returns: `nonce ‖ MAC ‖ ciphertext`.
    public static func seal(_ plaintext: UnsafeRawBufferPointer, key: SecretBytes) -> [UInt8] {
        Sodium.ensureInitialized()
        var nonce = [UInt8](repeating: 0, count: nonceByteCount)
        nonce.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, nonceByteCount) }
        return nonce.withUnsafeBytes { seal(plaintext, key: key, nonce: $0) }
    }

    /// Encrypts `plaintext` under `key` with the given nonce. A nonce must never be reused
    /// with the same key; this entry point exists for known-answer tests and for callers that
    /// draw nonces from a ``RandomPool``.
    public static func seal(
        _ plaintext: UnsafeRawBufferPointer,
        key: SecretBytes,
        nonce: UnsafeRawBufferPointer
    ) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: boxByteCount(plaintextCount: plaintext.count)) { output, initialized in
            seal(plaintext, key: key, nonce: nonce, into: UnsafeMutableRawBufferPointer(output))
            initialized = output.count
        }
    }

    /// Writes `nonce ‖ MAC ‖ ciphertext` into `output`, which must hold exactly
    /// ``boxByteCount(plaintextCount:)`` bytes.
    public static func seal(
        _ plaintext: UnsafeRawBufferPointer,
        key: SecretBytes,
        nonce: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer
    ) {
        precondition(key.count == keyByteCount, "secretbox key must be 32 bytes")
        precondition(nonce.count == nonceByteCount, "secretbox nonce must be 24 bytes")
        precondition(
            output.count == boxByteCount(plaintextCount: plaintext.count), "secretbox output has the wrong size")
        Sodium.ensureInitialized()
        let out = output.baseAddress!
        out.copyMemory(from: nonce.baseAddress!, byteCount: nonceByteCount)
        var empty: UInt8 = 0
        let rc = key.withUnsafeBytes { keyBytes in
            withUnsafeMutablePointer(to: &empty) { emptyInput in
                crypto_secretbox_easy(
                    (out + nonceByteCount).assumingMemoryBound(to: UInt8.self),
                    plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(emptyInput),
                    UInt64(plaintext.count),
                    nonce.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                )
            }
        }
        // crypto_secretbox_easy fails only for messages larger than SIZE_MAX - MACBYTES.
        precondition(rc == 0, "crypto_secretbox_easy failed")
    }

    /// The plaintext length of a box of `boxCount` bytes, or throws if it is too short.
    public static func plaintextByteCount(boxCount: Int) throws -> Int {
        guard boxCount >= overhead else { throw VaultCryptoError.truncatedInput }
        return boxCount - overhead
    }

    /// Verifies and decrypts `box` (`nonce ‖ MAC ‖ ciphertext`) into `output`, which must hold
    /// exactly ``plaintextByteCount(boxCount:)`` bytes (e.g. a reusable ``SecretBytes``
    /// scratch buffer).
    /// - Throws: ``VaultCryptoError/Code/truncatedInput`` if the box is too short,
    ///   ``VaultCryptoError/Code/authenticationFailed`` if it was altered or the key is wrong.
    public static func open(
        _ box: UnsafeRawBufferPointer,
        key: SecretBytes,
        into output: UnsafeMutableRawBufferPointer
    ) throws {
        guard key.count == keyByteCount else { throw VaultCryptoError.invalidKeySize }
        let plaintextCount = try plaintextByteCount(boxCount: box.count)
        guard output.count == plaintextCount else { throw VaultCryptoError.invalidParameter }
        Sodium.ensureInitialized()
        let base = box.baseAddress!
        var scratch: UInt8 = 0
        let rc = key.withUnsafeBytes { keyBytes in
            withUnsafeMutablePointer(to: &scratch) { emptyOutput in
                crypto_secretbox_open_easy(
                    output.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyOutput,
                    (base + nonceByteCount).assumingMemoryBound(to: UInt8.self),
                    UInt64(box.count - nonceByteCount),
                    base.assumingMemoryBound(to: UInt8.self),
                    keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                )
            }
        }
        guard rc == 0 else {
            ConstantTime.wipe(output)
            throw VaultCryptoError.authenticationFailed
        }
    }

    /// Verifies and decrypts `box` into fresh guarded memory.
    public static func open(_ box: UnsafeRawBufferPointer, key: SecretBytes) throws -> SecretBytes {
        let plaintextCount = try plaintextByteCount(boxCount: box.count)
        return try SecretBytes(count: plaintextCount) { output in
            try open(box, key: key, into: UnsafeMutableRawBufferPointer(rebasing: output[0..<plaintextCount]))
        }
    }
}
