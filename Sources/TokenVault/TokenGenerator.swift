import CardTokens
import VaultCrypto

/// Makes new tokens from a caller's random pool.
enum TokenGenerator {
    /// Random bytes one token may consume at most (opaque: 16; numeric: rejection sampling
    /// over at most 9 digits, drawn generously).
    static let randomBytesPerToken = 32

    /// `tok_` + sortable base64 of (48-bit big-endian milliseconds since 1970 ‖ 16 random bytes):
    /// 30 characters, 128 random bits. Tokens made later sort later (as UUIDv7 and ULID do), so
    /// inserting one touches the right edge of the token index instead of a random page; the
    /// timestamp reveals only the creation time, which the metadata shows anyway.
    static func opaque(pool: inout RandomPool, milliseconds: Int64) -> Token {
        pool.take(16) { opaque(milliseconds: milliseconds, random: $0) }
    }

    /// The opaque token for a timestamp and 16 given random bytes (known-answer tests use this).
    static func opaque(milliseconds: Int64, random: UnsafeRawBufferPointer) -> Token {
        precondition(random.count == 16)
        var bytes = [UInt8](repeating: 0, count: 22)
        for index in 0..<6 {
            bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (40 - 8 * index))
        }
        for index in 0..<16 { bytes[6 + index] = random[index] }
        return bytes.withUnsafeBytes { Token(unchecked: Token.opaquePrefix + encode($0, alphabet: sortableAlphabet)) }
    }

    /// A numeric token for a PAN: same length, first six and last four digits kept, random
    /// digits between, then one middle digit changed if needed so the whole fails Luhn.
    static func numeric(panDigits pan: UnsafeBufferPointer<UInt8>, pool: inout RandomPool) -> Token {
        var digits = Array(pan)
        defer { ConstantTime.wipe(&digits) }
        let middle = 6..<(digits.count - 4)
        pool.take(randomBytesPerToken) { random in
            var source = random.makeIterator()
            for index in middle {
                // Rejection sampling: bytes 250...255 would bias digits 0-5.
                var byte = source.next() ?? 0
                while byte >= 250 { byte = source.next() ?? SecureRandom.bytes(1)[0] }
                digits[index] = UInt8(ascii: "0") + byte % 10
            }
        }
        if Luhn.isValid(digits: digits) {
            // Changing one digit by +1 (mod 10) always changes the Luhn sum, so it now fails.
            let last = middle.upperBound - 1
            digits[last] = UInt8(ascii: "0") + (digits[last] - UInt8(ascii: "0") + 1) % 10
        }
        return Token(unchecked: String(decoding: digits, as: UTF8.self))
    }

    /// RFC 4648 §5 base64url.
    private static let base64URLAlphabet = Array(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    /// The same 64 URL-safe characters in ASCII order, so encoded strings sort like their bytes.
    static let sortableAlphabet = Array("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz".utf8)

    /// base64url without padding (credential secrets).
    static func base64URL(_ bytes: UnsafeRawBufferPointer) -> String {
        encode(bytes, alphabet: base64URLAlphabet)
    }

    /// Base64 (6 bits per character, most significant first, no padding) over `alphabet`.
    private static func encode(_ bytes: UnsafeRawBufferPointer, alphabet: [UInt8]) -> String {
        var output = [UInt8]()
        output.reserveCapacity((bytes.count * 4 + 2) / 3)
        var index = 0
        while index + 3 <= bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            output += [
                alphabet[Int(value >> 18)], alphabet[Int(value >> 12 & 63)], alphabet[Int(value >> 6 & 63)],
                alphabet[Int(value & 63)],
            ]
            index += 3
        }
        let rest = bytes.count - index
        if rest == 1 {
            let value = UInt32(bytes[index]) << 16
            output += [alphabet[Int(value >> 18)], alphabet[Int(value >> 12 & 63)]]
        } else if rest == 2 {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8
            output += [alphabet[Int(value >> 18)], alphabet[Int(value >> 12 & 63)], alphabet[Int(value >> 6 & 63)]]
        }
        return String(decoding: output, as: UTF8.self)
    }
}
