import CardTokens
import VaultCrypto

/// The encrypted form of a card record or a CVV, bound to its token.
///
/// Envelope: `0x01 ‖ u32 BE key version ‖ nonce (24) ‖ MAC (16) ‖ ciphertext`.
/// Plaintext: `0x01 ‖ kind ‖ u8 token length ‖ token ‖ u8 data length ‖ data ‖ extra`, where
/// kind is `P` (card: data = PAN digits, extra = u8 exp month ‖ u16 BE exp year) or `C`
/// (CVV digits, no extra). Opening checks the kind and that the token inside equals the row's
/// token, so a ciphertext copied to another row, or a CVV box put in the card table, fails.
enum RecordEnvelope {
    enum Kind: UInt8 {
        case card = 0x50  // "P"
        case cvv = 0x43  // "C"
    }

    static let formatByte: UInt8 = 0x01
    static let headerByteCount = 5

    /// The largest plaintext: header (3) + token (34 for an opaque one, at most 19 for a numeric
    /// one) + length (1) + PAN (≤ 19) + expiry (3) = 60; 64 leaves room.
    static let maximumPlaintextByteCount = 64

    /// The key version an envelope names.
    static func keyVersion(of envelope: UnsafeRawBufferPointer) throws -> UInt32 {
        guard envelope.count >= headerByteCount + SecretBox.overhead else { throw VaultCryptoError.truncatedInput }
        guard envelope[0] == formatByte else { throw VaultCryptoError.unsupportedFormat }
        return UInt32(envelope[1]) << 24 | UInt32(envelope[2]) << 16 | UInt32(envelope[3]) << 8 | UInt32(envelope[4])
    }

    /// Builds the plaintext into `scratch` and returns its length.
    static func writePlaintext(
        kind: Kind, token: String, data: UnsafeBufferPointer<UInt8>, expMonth: Int = 0, expYear: Int = 0,
        into scratch: UnsafeMutableRawBufferPointer
    ) -> Int {
        let tokenBytes = token.utf8
        var offset = 0
        func put(_ byte: UInt8) {
            scratch[offset] = byte
            offset += 1
        }
        put(formatByte)
        put(kind.rawValue)
        put(UInt8(tokenBytes.count))
        for byte in tokenBytes { put(byte) }
        put(UInt8(data.count))
        for byte in data { put(byte) }
        if kind == .card {
            put(UInt8(expMonth))
            put(UInt8(expYear >> 8))
            put(UInt8(expYear & 0xFF))
        }
        return offset
    }

    /// Seals a plaintext held in `plaintext` under `key` (version `version`) with `nonce`.
    static func seal(
        _ plaintext: UnsafeRawBufferPointer, version: UInt32, key: SecretBytes, nonce: UnsafeRawBufferPointer
    ) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: headerByteCount + SecretBox.boxByteCount(plaintextCount: plaintext.count))
        {
            buffer, initialized in
            buffer[0] = formatByte
            buffer[1] = UInt8(version >> 24)
            buffer[2] = UInt8((version >> 16) & 0xFF)
            buffer[3] = UInt8((version >> 8) & 0xFF)
            buffer[4] = UInt8(version & 0xFF)
            SecretBox.seal(
                plaintext, key: key, nonce: nonce,
                into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[headerByteCount...])))
            initialized = buffer.count
        }
    }

    /// Opens `envelope` into `scratch`, checks kind and token binding, and returns the length of
    /// the plaintext written.
    /// - Throws: ``VaultError`` `record_corrupt` for a ciphertext that fails authentication or is
    ///   bound to another token or kind.
    static func open(
        _ envelope: UnsafeRawBufferPointer, kind: Kind, token: String, key: SecretBytes,
        into scratch: UnsafeMutableRawBufferPointer
    ) throws -> Int {
        let box = UnsafeRawBufferPointer(rebasing: envelope[headerByteCount...])
        let count: Int
        do {
            count = try SecretBox.plaintextByteCount(boxCount: box.count)
            guard count <= scratch.count else { throw VaultCryptoError.invalidParameter }
            try SecretBox.open(box, key: key, into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<count]))
        } catch {
            throw VaultError(.recordCorrupt, "ciphertext for token \(token) failed authentication")
        }
        let tokenBytes = Array(token.utf8)
        let bound =
            count >= 3 + tokenBytes.count + 1 && scratch[0] == formatByte && scratch[1] == kind.rawValue
            && Int(scratch[2]) == tokenBytes.count
            && tokenBytes.indices.allSatisfy { scratch[3 + $0] == tokenBytes[$0] }
        guard bound else {
            ConstantTime.wipe(scratch)
            throw VaultError(.recordCorrupt, "ciphertext is not bound to token \(token)")
        }
        return count
    }
}
