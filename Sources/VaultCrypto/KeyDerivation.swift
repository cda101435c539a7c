import CSodium

/// Subkey derivation: libsodium `crypto_kdf_derive_from_key` (BLAKE2b with the subkey id as
/// salt and an 8-byte context as personalisation).
public enum KeyDerivation {
    /// The root key length (`crypto_kdf_KEYBYTES`).
    public static let rootKeyByteCount = 32
    /// The context length (`crypto_kdf_CONTEXTBYTES`).
    public static let contextByteCount = 8

    /// Derives subkey number `id` for `context` from `root`.
    /// - Parameters:
    ///   - id: the subkey number.
    ///   - context: exactly 8 ASCII characters naming the use, e.g. `"CARDFPRT"`.
    ///   - root: a 32-byte root key.
    ///   - byteCount: the subkey length, 16 to 64 bytes.
    /// - Throws: ``VaultCryptoError/Code/invalidParameter`` for a bad context or length,
    ///   ``VaultCryptoError/Code/invalidKeySize`` for a root key that is not 32 bytes.
    public static func deriveSubkey(
        id: UInt64,
        context: String,
        from root: SecretBytes,
        byteCount: Int = 32
    ) throws -> SecretBytes {
        let contextBytes = Array(context.utf8)
        guard contextBytes.count == contextByteCount else { throw VaultCryptoError.invalidParameter }
        guard (16...64).contains(byteCount) else { throw VaultCryptoError.invalidParameter }
        guard root.count == rootKeyByteCount else { throw VaultCryptoError.invalidKeySize }
        Sodium.ensureInitialized()
        return SecretBytes(count: byteCount) { output in
            let rc = root.withUnsafeBytes { rootBytes in
                contextBytes.withUnsafeBufferPointer { contextPointer in
                    contextPointer.withMemoryRebound(to: CChar.self) { contextChars in
                        crypto_kdf_derive_from_key(
                            output.baseAddress!.assumingMemoryBound(to: UInt8.self), byteCount, id,
                            contextChars.baseAddress!,
                            rootBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                        )
                    }
                }
            }
            precondition(rc == 0, "crypto_kdf_derive_from_key failed with valid parameters")
        }
    }
}
