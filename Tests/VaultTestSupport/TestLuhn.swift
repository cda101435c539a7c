/// The Luhn check written again for tests, so generated card numbers do not depend on the
/// implementation under test (`CardTokens.Luhn`).
public enum TestLuhn {
    /// The check digit (ASCII) that makes `body` followed by it valid.
    public static func checkDigit(for body: [UInt8]) -> UInt8 {
        var sum = 0
        for (position, byte) in body.reversed().enumerated() {
            var digit = Int(byte - UInt8(ascii: "0"))
            if position % 2 == 0 {
                digit *= 2
                if digit > 9 { digit -= 9 }
            }
            sum += digit
        }
        return UInt8(ascii: "0") + UInt8((10 - sum % 10) % 10)
    }

    /// `body` followed by its check digit.
    public static func completing(_ body: String) -> String {
        var bytes = Array(body.utf8)
        bytes.append(checkDigit(for: bytes))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Whether the ASCII digits pass the Luhn check.
    public static func passes(_ digits: String) -> Bool {
        let bytes = Array(digits.utf8)
        return checkDigit(for: Array(bytes.dropLast())) == bytes.last
    }

    /// `count` random decimal digits.
    public static func digits<G: RandomNumberGenerator>(_ count: Int, using generator: inout G) -> String {
        String((0..<count).map { _ in Character(String(Int.random(in: 0...9, using: &generator))) })
    }
}
