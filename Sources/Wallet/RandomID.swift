/// Random resource ids: a prefix and 128 random bits in lower-case base32 (26 characters).
/// Not secrets, so the system generator (getrandom) is enough.
enum RandomID {
    private static let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)

    static func make(_ prefix: String) -> String {
        var generator = SystemRandomNumberGenerator()
        var bits = (UInt128(generator.next() as UInt64) << 64) | UInt128(generator.next() as UInt64)
        var characters = [UInt8](repeating: 0, count: 26)
        for index in characters.indices.reversed() {
            characters[index] = alphabet[Int(bits & 31)]
            bits >>= 5
        }
        return prefix + "_" + String(decoding: characters, as: UTF8.self)
    }
}
