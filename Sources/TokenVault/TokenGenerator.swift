import CardTokens
import VaultCrypto

/// Makes new tokens from a caller's random pool.
enum TokenGenerator {
    /// Random bytes one token may consume at most (opaque: 16; numeric: rejection sampling
    /// over at most 9 digits, drawn generously).
    static let randomBytesPerToken = 32

    /// `tok_` + base64url of 16 random bytes (128 bits, 22 characters).
    static func opaque(pool: inout RandomPool) -> Token {
        pool.take(16) { bytes in
            Token(unchecked: Token.opaquePrefix + base64URL(bytes))
        }
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

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    static func base64URL(_ bytes: UnsafeRawBufferPointer) -> String {
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
