import Testing

@testable import VaultCrypto

/// `crypto_box_seal` (X25519 + XSalsa20-Poly1305 with an ephemeral sender key).
///
/// No fixed known-answer vector exists: every seal uses a fresh random ephemeral key pair, so
/// these tests check round trips, randomisation and rejection of altered boxes.
@Suite struct SealedBoxTests {
    static let recipient = SealedBox.KeyPair.generate()

    @Test func constants() {
        #expect(SealedBox.keyByteCount == 32)
        #expect(SealedBox.overhead == 48)
        #expect(Self.recipient.publicKey.count == 32)
        #expect(Self.recipient.secretKey.count == 32)
    }

    @Test(arguments: [1, 2, 16, 31, 32, 33, 100, 1000, 4096])
    func roundTrip(_ length: Int) throws {
        let message = SecureRandom.bytes(length)
        let sealed = try Self.seal(message, to: Self.recipient.publicKey)
        #expect(sealed.count == length + SealedBox.overhead)
        let opened = try Self.open(sealed, with: Self.recipient)
        #expect(opened.count == length)
        #expect(TestBytes.reveal(opened) == message)
    }

    @Test func roundTripRandomLengths() throws {
        for _ in 0..<100 {
            let message = SecureRandom.bytes(1 + Int(SecureRandom.uniform(300)))
            let sealed = try Self.seal(message, to: Self.recipient.publicKey)
            #expect(TestBytes.reveal(try Self.open(sealed, with: Self.recipient)) == message)
        }
    }

    @Test func emptyMessage() throws {
        let sealed = try Self.seal([], to: Self.recipient.publicKey)
        #expect(sealed.count == SealedBox.overhead)
        let opened = try Self.open(sealed, with: Self.recipient)
        #expect(opened.count == 0)
    }

    @Test func sealingIsRandomised() throws {
        let message = Array("batch file 2024-06-01".utf8)
        let a = try Self.seal(message, to: Self.recipient.publicKey)
        let b = try Self.seal(message, to: Self.recipient.publicKey)
        #expect(a != b)
        // The ephemeral public keys (first 32 bytes) differ too.
        #expect(a.prefix(32) != b.prefix(32))
    }

    @Test func keyPairsAreDistinct() {
        let a = SealedBox.KeyPair.generate()
        let b = SealedBox.KeyPair.generate()
        #expect(a.publicKey != b.publicKey)
        #expect(a.secretKey != b.secretKey)
    }

    /// Ephemeral public key (0...31), MAC (32...47), ciphertext (48...).
    @Test(arguments: [0, 15, 31, 32, 40, 47, 48, 60, 79])
    func tamperedByteFailsAuthentication(_ index: Int) throws {
        let sealed = try Self.seal(SecureRandom.bytes(32), to: Self.recipient.publicKey)
        #expect(sealed.count == 80)
        for bit in [0, 7] {
            let tampered = TestBytes.flipping(sealed, at: index, bit: bit)
            #expect(throws: VaultCryptoError.authenticationFailed) { try Self.open(tampered, with: Self.recipient) }
        }
    }

    @Test(arguments: [0, 1, 32, 47])
    func truncatedBelowOverheadIsRejected(_ length: Int) throws {
        let sealed = try Self.seal(SecureRandom.bytes(32), to: Self.recipient.publicKey)
        #expect(throws: VaultCryptoError.truncatedInput) {
            try Self.open(Array(sealed.prefix(length)), with: Self.recipient)
        }
    }

    @Test func emptyInputIsRejected() {
        #expect(throws: VaultCryptoError.truncatedInput) {
            try SealedBox.open(UnsafeRawBufferPointer(start: nil, count: 0), with: Self.recipient)
        }
    }

    @Test func truncatedOrExtendedBodyFailsAuthentication() throws {
        let sealed = try Self.seal(SecureRandom.bytes(32), to: Self.recipient.publicKey)
        for length in [48, 49, 79] {
            #expect(throws: VaultCryptoError.authenticationFailed) {
                try Self.open(Array(sealed.prefix(length)), with: Self.recipient)
            }
        }
        #expect(throws: VaultCryptoError.authenticationFailed) { try Self.open(sealed + [0], with: Self.recipient) }
    }

    @Test func wrongKeyPairFails() throws {
        let sealed = try Self.seal(Array("4111111111111111".utf8), to: Self.recipient.publicKey)
        let stranger = SealedBox.KeyPair.generate()
        #expect(throws: VaultCryptoError.authenticationFailed) { try Self.open(sealed, with: stranger) }
        // The right secret key with the wrong public key: the nonce is derived from the
        // recipient's public key, so this must fail too.
        let mismatched = SealedBox.KeyPair(publicKey: stranger.publicKey, secretKey: Self.recipient.secretKey)
        #expect(throws: VaultCryptoError.authenticationFailed) { try Self.open(sealed, with: mismatched) }
    }

    @Test func badKeySizesAreRejected() {
        for length in [0, 31, 33] {
            #expect(throws: VaultCryptoError.invalidKeySize) {
                try Self.seal([1, 2, 3], to: [UInt8](repeating: 9, count: length))
            }
        }
        let sealed = (try? Self.seal([1, 2, 3], to: Self.recipient.publicKey)) ?? []
        let shortPublic = SealedBox.KeyPair(
            publicKey: Array(Self.recipient.publicKey.prefix(31)), secretKey: Self.recipient.secretKey)
        #expect(throws: VaultCryptoError.invalidKeySize) { try Self.open(sealed, with: shortPublic) }
        let shortSecret = SealedBox.KeyPair(
            publicKey: Self.recipient.publicKey, secretKey: SecretBytes(randomCount: 31))
        #expect(throws: VaultCryptoError.invalidKeySize) { try Self.open(sealed, with: shortSecret) }
    }

    // MARK: Helpers

    static func seal(_ message: [UInt8], to publicKey: [UInt8]) throws -> [UInt8] {
        try message.withUnsafeBytes { try SealedBox.seal($0, to: publicKey) }
    }

    static func open(_ sealed: [UInt8], with keyPair: SealedBox.KeyPair) throws -> SecretBytes {
        try sealed.withUnsafeBytes { try SealedBox.open($0, with: keyPair) }
    }
}
