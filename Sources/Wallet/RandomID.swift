package import Foundation

/// Resource ids: a prefix and 26 base32 characters holding a 48-bit millisecond timestamp and 80
/// random bits. The alphabet is in ASCII order, so ids sort by creation time and new ids append
/// to the end of their unique indexes instead of landing on random pages (fewer pages written
/// per commit). Not secrets, so the system generator (getrandom) is enough; the timestamp only
/// repeats the `created_at` every response shows.
package enum RandomID {
    private static let alphabet = Array("234567abcdefghijklmnopqrstuvwxyz".utf8)

    package static func make(_ prefix: String, now: Date = Date()) -> String {
        var generator = SystemRandomNumberGenerator()
        let milliseconds = UInt128(UInt64(max(0, now.timeIntervalSince1970 * 1000)) & 0xFFFF_FFFF_FFFF)
        let random = UInt128(generator.next() as UInt64) << 16 | UInt128(generator.next() as UInt16)
        var bits = milliseconds << 80 | random
        var characters = [UInt8](repeating: 0, count: 26)
        // 26 characters carry 130 bits: the top two are zero.
        for index in characters.indices.reversed() {
            characters[index] = alphabet[Int(bits & 31)]
            bits >>= 5
        }
        return prefix + "_" + String(decoding: characters, as: UTF8.self)
    }
}
