import CSodium

/// Anonymous public-key encryption (`crypto_box_seal`: X25519 + XSalsa20-Poly1305), used for
/// files sent to the acquirer: only the holder of the recipient's secret key can open them.
public enum SealedBox {
    /// Public and secret key length (`crypto_box_PUBLICKEYBYTES`, `crypto_box_SECRETKEYBYTES`).
    public static let keyByteCount = 32
    /// Bytes a sealed box adds to its message (`crypto_box_SEALBYTES`).
    public static let overhead = 48

    /// A recipient's key pair; the secret half stays in guarded memory.
    public struct KeyPair: Sendable {
        public let publicKey: [UInt8]
        public let secretKey: SecretBytes

        /// A fresh random key pair.
        public static func generate() -> KeyPair {
            Sodium.ensureInitialized()
            var publicKey = [UInt8](repeating: 0, count: keyByteCount)
            let secretKey = SecretBytes(count: keyByteCount) { secret in
                let rc = publicKey.withUnsafeMutableBufferPointer { pk in
                    crypto_box_keypair(pk.baseAddress!, secret.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
                precondition(rc == 0, "crypto_box_keypair failed")
            }
            return KeyPair(publicKey: publicKey, secretKey: secretKey)
        }
    }

    /// Encrypts `message` to `recipientPublicKey`.
    public static func seal(_ message: UnsafeRawBufferPointer, to recipientPublicKey: [UInt8]) throws -> [UInt8] {
        guard recipientPublicKey.count == keyByteCount else { throw VaultCryptoError.invalidKeySize }
        Sodium.ensureInitialized()
        var empty: UInt8 = 0
        return try [UInt8](unsafeUninitializedCapacity: message.count + overhead) { output, initialized in
            let rc = recipientPublicKey.withUnsafeBufferPointer { pk in
                withUnsafeMutablePointer(to: &empty) { emptyPointer in
                    crypto_box_seal(
                        output.baseAddress!,
                        message.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? UnsafePointer(emptyPointer),
                        UInt64(message.count), pk.baseAddress!)
                }
            }
            guard rc == 0 else { throw VaultCryptoError.invalidParameter }
            initialized = message.count + overhead
        }
    }

    /// Opens a sealed box with the recipient's key pair.
    /// - Throws: ``VaultCryptoError/Code/truncatedInput`` or
    ///   ``VaultCryptoError/Code/authenticationFailed``.
    public static func open(_ sealed: UnsafeRawBufferPointer, with keyPair: KeyPair) throws -> SecretBytes {
        guard sealed.count >= overhead else { throw VaultCryptoError.truncatedInput }
        guard keyPair.publicKey.count == keyByteCount, keyPair.secretKey.count == keyByteCount else {
            throw VaultCryptoError.invalidKeySize
        }
        let messageCount = sealed.count - overhead
        return try SecretBytes(count: messageCount) { output in
            let rc = keyPair.publicKey.withUnsafeBufferPointer { pk in
                keyPair.secretKey.withUnsafeBytes { sk in
                    crypto_box_seal_open(
                        output.baseAddress!.assumingMemoryBound(to: UInt8.self),
                        sealed.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(sealed.count),
                        pk.baseAddress!, sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
            guard rc == 0 else { throw VaultCryptoError.authenticationFailed }
        }
    }
}
