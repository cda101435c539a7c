import CardTokens
import VaultCrypto

/// The encrypted form of a card record or a CVV, bound to its token.
///
/// Card envelope: `0x01 ‖ u32 BE key version ‖ nonce (24) ‖ MAC (16) ‖ ciphertext`, under a data key.
/// CVV envelope: `0x02 ‖ u64 BE epoch ‖ nonce (24) ‖ MAC (16) ‖ ciphertext`, under an epoch key
/// held only in memory (``CVVEpochKeys``), so no key in `vault.db` opens it.
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
    /// Byte 0 of a CVV envelope: sealed under an epoch key, not a data key.
    static let cvvFormatByte: UInt8 = 0x02
    static let cvvHeaderByteCount = 9

    /// The largest plaintext: header (3) + token (34 for an opaque one, at most 19 for a numeric
    /// one) + length (1) + PAN (≤ 19) + expiry (3) = 60; 64 leaves room.
    static let maximumPlaintextByteCount = 64

    /// The key version an envelope names.
    static func keyVersion(of envelope: UnsafeRawBufferPointer) throws -> UInt32 {
        guard envelope.count >= headerByteCount + SecretBox.overhead else { throw VaultCryptoError.truncatedInput }
        guard envelope[0] == formatByte else { throw VaultCryptoError.unsupportedFormat }
        return UInt32(envelope[1]) << 24 | UInt32(envelope[2]) << 16 | UInt32(envelope[3]) << 8 | UInt32(envelope[4])
    }

    /// The epoch a CVV envelope names.
    static func cvvEpoch(of envelope: UnsafeRawBufferPointer) throws -> UInt64 {
        guard envelope.count >= cvvHeaderByteCount + SecretBox.overhead else { throw VaultCryptoError.truncatedInput }
        guard envelope[0] == cvvFormatByte else { throw VaultCryptoError.unsupportedFormat }
        return envelope[1...8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
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

    /// Where the PAN digits lie in a card plaintext of `count` bytes (layout above: `01 ‖ kind ‖
    /// token length ‖ token ‖ PAN length ‖ PAN ‖ month ‖ year (u16)`), or `nil` if malformed.
    static func panRange(inCardPlaintext plaintext: UnsafeRawBufferPointer, count: Int) -> Range<Int>? {
        guard count >= 4, 3 + Int(plaintext[2]) < count else { return nil }
        let panStart = 3 + Int(plaintext[2]) + 1
        let panLength = Int(plaintext[panStart - 1])
        guard panStart + panLength + 3 == count else { return nil }
        return panStart..<panStart + panLength
    }

    /// Seals a plaintext held in `plaintext` under `key` (version `version`) with `nonce`.
    static func seal(
        _ plaintext: UnsafeRawBufferPointer, version: UInt32, key: SecretBytes, nonce: UnsafeRawBufferPointer
    ) -> [UInt8] {
        seal(plaintext, format: formatByte, id: UInt64(version), idByteCount: 4, key: key, nonce: nonce)
    }

    /// Seals a CVV plaintext under the key of `epoch`.
    static func sealCVV(
        _ plaintext: UnsafeRawBufferPointer, epoch: UInt64, key: SecretBytes, nonce: UnsafeRawBufferPointer
    ) -> [UInt8] {
        seal(plaintext, format: cvvFormatByte, id: epoch, idByteCount: 8, key: key, nonce: nonce)
    }

    /// `format ‖ id (idByteCount bytes, big-endian) ‖ secretbox`, written straight into the
    /// envelope (no header array per record: this runs for every tokenize and rewrap).
    private static func seal(
        _ plaintext: UnsafeRawBufferPointer, format: UInt8, id: UInt64, idByteCount: Int, key: SecretBytes,
        nonce: UnsafeRawBufferPointer
    ) -> [UInt8] {
        let headerCount = 1 + idByteCount
        return [UInt8](
            unsafeUninitializedCapacity: headerCount + SecretBox.boxByteCount(plaintextCount: plaintext.count)
        ) {
            buffer, initialized in
            buffer[0] = format
            for index in 0..<idByteCount {
                buffer[1 + index] = UInt8(truncatingIfNeeded: id >> (8 * UInt64(idByteCount - 1 - index)))
            }
            SecretBox.seal(
                plaintext, key: key, nonce: nonce,
                into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: buffer[headerCount...])))
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
        let header = envelope.first == cvvFormatByte ? cvvHeaderByteCount : headerByteCount
        guard envelope.count >= header else {
            throw VaultError(.recordCorrupt, "ciphertext for token \(token) is malformed")
        }
        let box = UnsafeRawBufferPointer(rebasing: envelope[header...])
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
