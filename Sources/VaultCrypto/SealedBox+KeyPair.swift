import CSodium

extension SealedBox.KeyPair {
    /// The key pair of a stored secret key (e.g. read from a key file): the public key is derived
    /// from it (`crypto_scalarmult_base`), so the two halves cannot disagree.
    /// - Throws: ``VaultCryptoError/Code/invalidKeySize`` unless `secretKey` is
    ///   ``SealedBox/keyByteCount`` bytes.
    public init(secretKey: SecretBytes) throws {
        guard secretKey.count == SealedBox.keyByteCount else { throw VaultCryptoError.invalidKeySize }
        Sodium.ensureInitialized()
        var publicKey = [UInt8](repeating: 0, count: SealedBox.keyByteCount)
        let rc = publicKey.withUnsafeMutableBufferPointer { pk in
            secretKey.withUnsafeBytes { sk in
                crypto_scalarmult_base(pk.baseAddress!, sk.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard rc == 0 else { throw VaultCryptoError.invalidParameter }
        self.init(publicKey: publicKey, secretKey: secretKey)
    }
}
