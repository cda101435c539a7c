import CardTokens
package import VaultCrypto

/// The CVV of a card the vault issues, derived when needed and never stored (docs/CRYPTO.md §21):
///
/// ```
/// h   = BLAKE2b(key = CVK, message = "CVV1" ‖ u8 len(PAN) ‖ PAN ‖ MM ‖ YYYY, outlen = 16)
/// CVV = (u64 BE of h[0..<8]) mod 1000, as 3 ASCII digits, zero-padded
/// ```
///
/// PAN, `MM` (two digits) and `YYYY` (four digits) are ASCII. The modulo favours the residues
/// below 2⁶⁴ mod 1000 = 616 by one part in 1.8 × 10¹⁶: nothing an attacker can use.
package enum CardVerificationValue {
    static let domain = Array("CVV1".utf8)
    /// Three digits: issued cards have no brand that prints four (the issuing BIN is not Amex's).
    package static let digitCount = 3
    static let hashByteCount = 16
    /// "CVV1" ‖ length ‖ at most 19 PAN digits ‖ MM ‖ YYYY.
    static let maximumMessageByteCount = 4 + 1 + 19 + 2 + 4

    /// Writes the CVV of the card (PAN as ASCII digits, expiry) under `key` into `output`
    /// (``digitCount`` ASCII digits). The message and the hash, which carry the PAN and the CVV,
    /// are wiped before this returns.
    package static func derive(
        panDigits: UnsafeBufferPointer<UInt8>, expMonth: Int, expYear: Int, key: SecretBytes,
        into output: UnsafeMutableBufferPointer<UInt8>
    ) {
        precondition(output.count == digitCount && panDigits.count <= 19)
        precondition((1...12).contains(expMonth) && (1000...9999).contains(expYear))
        let scratch = SecretBytes(zeroedCount: maximumMessageByteCount + hashByteCount, protection: .wipedOnRelease)
        defer { scratch.wipe() }
        scratch.withUnsafeMutableBytes { buffer in
            var count = 0
            func append(_ bytes: some Sequence<UInt8>) {
                for byte in bytes {
                    buffer[count] = byte
                    count += 1
                }
            }
            func appendDecimal(_ value: Int, digits: Int) {
                var divisor = 1
                for _ in 1..<digits { divisor *= 10 }
                for _ in 0..<digits {
                    append(CollectionOfOne(UInt8(ascii: "0") + UInt8(value / divisor % 10)))
                    divisor /= 10
                }
            }
            append(domain)
            append(CollectionOfOne(UInt8(panDigits.count)))
            append(panDigits)
            appendDecimal(expMonth, digits: 2)
            appendDecimal(expYear, digits: 4)
            let hash = UnsafeMutableRawBufferPointer(
                rebasing: buffer[maximumMessageByteCount..<maximumMessageByteCount + hashByteCount])
            KeyedHash.hash(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), key: key, into: hash)
            var value = hash[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } % 1000
            for index in (0..<digitCount).reversed() {
                output[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
        }
    }
}
