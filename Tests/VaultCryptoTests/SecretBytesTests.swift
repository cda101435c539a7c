import Testing

@testable import VaultCrypto

@Suite struct SecretBytesTests {
    @Test func equalityComparesContentAndSize() {
        let a = TestBytes.secret([1, 2, 3, 4])
        let b = TestBytes.secret([1, 2, 3, 4])
        #expect(a == b)
        #expect(a == a)
        #expect(a != TestBytes.secret([1, 2, 3, 5]))
        #expect(a != TestBytes.secret([0, 2, 3, 4]))
        #expect(a != TestBytes.secret([1, 2, 3]))
        #expect(a != TestBytes.secret([1, 2, 3, 4, 0]))
        #expect(SecretBytes(zeroedCount: 32) == SecretBytes(zeroedCount: 32))
        #expect(SecretBytes(zeroedCount: 32) != SecretBytes(zeroedCount: 33))
        #expect(SecretBytes(randomCount: 32) != SecretBytes(randomCount: 32))
    }

    @Test func descriptionNeverShowsTheBytes() {
        let key = TestBytes.secret([UInt8](repeating: 0x41, count: 32))
        var dumped = ""
        dump(key, to: &dumped)
        let renderings = [
            key.description, key.debugDescription, "\(key)", String(describing: key), String(reflecting: key),
            "\([key])",
        ]
        for text in renderings {
            #expect(!text.contains("AAAA"), "\(text)")
            #expect(!text.uppercased().contains("41"), "\(text)")
        }
        // `dump` also prints the buffer address (hex digits), so only the ASCII rendering of
        // the bytes is looked for there.
        #expect(!dumped.contains("AAAA"), "\(dumped)")
        #expect(dumped.contains("redacted"))
        #expect(key.description == "SecretBytes(32 bytes, redacted)")
    }

    @Test func wipeZeroesTheBytes() {
        let secret = TestBytes.secret([UInt8](repeating: 0x41, count: 48))
        #expect(TestBytes.reveal(secret) == [UInt8](repeating: 0x41, count: 48))
        secret.wipe()
        #expect(secret.count == 48)
        #expect(TestBytes.reveal(secret) == [UInt8](repeating: 0, count: 48))
        #expect(secret == SecretBytes(zeroedCount: 48))
    }

    @Test func initialisers() {
        #expect(TestBytes.reveal(SecretBytes(zeroedCount: 5)) == [0, 0, 0, 0, 0])
        let filled = SecretBytes(count: 4) { buffer in
            for i in buffer.indices { buffer[i] = UInt8(i + 10) }
        }
        #expect(TestBytes.reveal(filled) == [10, 11, 12, 13])
        let random = SecretBytes(randomCount: 64)
        #expect(random.count == 64)
        #expect(random != SecretBytes(zeroedCount: 64))
        let copied = TestBytes.secret(TestBytes.sequence(300))
        #expect(TestBytes.reveal(copied) == TestBytes.sequence(300))
    }

    @Test func initialiserErrorsPropagate() {
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            _ = try SecretBytes(count: 8) { _ in throw Boom() }
        }
    }

    @Test func mutableAccessWritesInPlace() {
        let scratch = SecretBytes(zeroedCount: 3)
        scratch.withUnsafeMutableBytes { $0[1] = 7 }
        #expect(TestBytes.reveal(scratch) == [0, 7, 0])
    }

    @Test func copyingAnEmptyBufferGivesAnEmptySecret() {
        // An empty secret stays empty (it is not padded to one zero byte).
        let empty = [UInt8]().withUnsafeBytes { SecretBytes(copying: $0) }
        #expect(empty.count == 0)
        #expect(TestBytes.reveal(empty) == [])
    }
}

@Suite struct ConstantTimeTests {
    @Test func equals() {
        let a: [UInt8] = [1, 2, 3, 4]
        #expect(ConstantTime.equals(a, [1, 2, 3, 4] as [UInt8]))
        #expect(!ConstantTime.equals(a, [1, 2, 3, 5] as [UInt8]))
        #expect(!ConstantTime.equals(a, [1, 2, 3] as [UInt8]))
        #expect(ConstantTime.equals([UInt8](), [UInt8]()))
        #expect(!ConstantTime.equals([UInt8](), [0] as [UInt8]))
        let padded: [UInt8] = [9, 1, 2, 3, 4, 9]
        #expect(ConstantTime.equals(a, padded[1..<5]))
        #expect(ConstantTime.equals(TestBytes.secret(a), a))
        #expect(!ConstantTime.equals(TestBytes.secret(a), padded))
        #expect(a.withUnsafeBytes { ConstantTime.equals($0, a) })
    }

    @Test func wipeArrayAndBuffer() {
        var bytes: [UInt8] = [1, 2, 3]
        ConstantTime.wipe(&bytes)
        #expect(bytes == [0, 0, 0])
        var empty: [UInt8] = []
        ConstantTime.wipe(&empty)
        #expect(empty.isEmpty)
        var other: [UInt8] = [4, 5]
        other.withUnsafeMutableBytes { ConstantTime.wipe($0) }
        #expect(other == [0, 0])
    }
}

@Suite struct VaultCryptoErrorTests {
    @Test func codesAndDescriptions() {
        #expect(VaultCryptoError.authenticationFailed.code == .authenticationFailed)
        #expect(VaultCryptoError.authenticationFailed.description == "VaultCryptoError(authentication_failed)")
        #expect(VaultCryptoError.truncatedInput.code.description == "truncated_input")
        #expect(VaultCryptoError.invalidKeySize.code.description == "invalid_key_size")
        #expect(VaultCryptoError.invalidParameter.code.description == "invalid_parameter")
        #expect(VaultCryptoError.unsupportedFormat.code.description == "unsupported_format")
        #expect(VaultCryptoError.invalidKeySize != VaultCryptoError.invalidParameter)
        #expect(VaultCryptoError(.truncatedInput) == VaultCryptoError.truncatedInput)
    }

    @Test func codeMatchesInCatchPatterns() {
        let key = SecretBytes(randomCount: SecretBox.keyByteCount)
        let box = [UInt8](repeating: 0, count: 41)
        var caught: String?
        do {
            _ = try box.withUnsafeBytes { try SecretBox.open($0, key: key) }
        } catch VaultCryptoError.Code.truncatedInput {
            caught = "truncated"
        } catch VaultCryptoError.Code.authenticationFailed {
            caught = "authentication"
        } catch {
            caught = "other"
        }
        #expect(caught == "authentication")
    }
}
