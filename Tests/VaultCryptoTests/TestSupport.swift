import Testing

@testable import VaultCrypto

/// Helpers shared by the VaultCrypto test suites. Test-only code may copy secrets into
/// ordinary arrays; production code never does.
enum TestBytes {
    /// Decodes lowercase or uppercase hex; traps on malformed input (a broken vector is a bug
    /// in the test, not a failure of the code under test).
    static func hex(_ string: String) -> [UInt8] {
        let digits = Array(string.utf8)
        precondition(digits.count % 2 == 0, "odd-length hex string")
        func nibble(_ c: UInt8) -> UInt8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: preconditionFailure("not a hex digit: \(c)")
            }
        }
        return stride(from: 0, to: digits.count, by: 2).map { nibble(digits[$0]) << 4 | nibble(digits[$0 + 1]) }
    }

    /// Lowercase hex of `bytes`.
    static func hex(of bytes: some Sequence<UInt8>) -> String {
        let table = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(table[Int(byte >> 4)])
            out.append(table[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `0x00, 0x01, ..., count - 1` (mod 256): the input pattern of the BLAKE2 and libsodium KATs.
    static func sequence(_ count: Int) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0) }
    }

    /// Copies `bytes` into a ``SecretBytes``.
    static func secret(_ bytes: [UInt8]) -> SecretBytes {
        bytes.withUnsafeBytes { SecretBytes(copying: $0) }
    }

    /// Copies the secret out, for comparisons in tests only.
    static func reveal(_ secret: SecretBytes) -> [UInt8] {
        secret.withUnsafeBytes { Array($0) }
    }

    /// A copy of `bytes` with bit `bit` of byte `index` flipped.
    static func flipping(_ bytes: [UInt8], at index: Int, bit: Int = 0) -> [UInt8] {
        var copy = bytes
        copy[index] ^= UInt8(1) << UInt8(bit)
        return copy
    }
}

/// One published test vector: an integer parameter (input length, subkey id, ...) and the
/// expected output, written as hex split into pieces so that lines stay short.
struct HexVector: Sendable, CustomTestStringConvertible {
    let parameter: Int
    let expected: [UInt8]

    init(_ parameter: Int, _ hexParts: String...) {
        self.parameter = parameter
        self.expected = TestBytes.hex(hexParts.joined())
    }

    var testDescription: String { "\(parameter) -> \(expected.count) bytes" }
}
