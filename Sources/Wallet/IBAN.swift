/// An International Bank Account Number (ISO 13616) with ISO 7064 MOD 97-10 check digits.
///
/// Stored and compared in its electronic form (no spaces, upper case); ``formatted`` groups it
/// by four for display.
public struct IBAN: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The electronic form, e.g. `DE89370400440532013000`.
    public let rawValue: String

    /// Parses an IBAN in electronic or print form (spaces allowed, any case).
    /// - Throws: ``WalletError`` `invalid_iban` when the characters, length or check digits are wrong.
    public init(validating text: String) throws(WalletError) {
        // Upper-cased byte by byte, ASCII only: `uppercased()` would turn "ı" into "I" and "ß"
        // into "SS", accepting characters no IBAN has.
        let bytes = text.utf8.filter { $0 != UInt8(ascii: " ") }.map { (97...122).contains($0) ? $0 - 32 : $0 }
        guard (15...34).contains(bytes.count),
            bytes[0...1].allSatisfy(Self.isLetter), bytes[2...3].allSatisfy(Self.isDigit),
            bytes[4...].allSatisfy({ Self.isLetter($0) || Self.isDigit($0) }),
            Self.mod97(bytes[4...] + bytes[0...3]) == 1
        else { throw WalletError(.invalidIBAN, "not a valid IBAN") }
        rawValue = String(decoding: bytes, as: UTF8.self)
    }

    /// The IBAN of `bban` (upper-case letters and digits) in `country` (ISO 3166 alpha-2), with
    /// its check digits computed.
    public init(country: String, bban: String) {
        let countryBytes = Array(country.utf8)
        let bbanBytes = Array(bban.utf8)
        precondition(countryBytes.count == 2 && countryBytes.allSatisfy(Self.isLetter), "country must be two letters")
        precondition(bbanBytes.allSatisfy { Self.isLetter($0) || Self.isDigit($0) }, "BBAN must be A-Z0-9")
        let check = 98 - Self.mod97(bbanBytes + countryBytes + Array("00".utf8))
        rawValue = country + (check < 10 ? "0" : "") + String(check) + bban
    }

    /// The two check digits.
    public var checkDigits: String { String(rawValue.dropFirst(2).prefix(2)) }

    /// The print form: groups of four separated by spaces.
    public var formatted: String {
        var groups = [Substring]()
        var rest = Substring(rawValue)
        while !rest.isEmpty {
            groups.append(rest.prefix(4))
            rest = rest.dropFirst(4)
        }
        return groups.joined(separator: " ")
    }

    public var description: String { rawValue }

    /// ISO 7064 MOD 97-10 over letters and digits, letters counting as 10…35; computed digit by
    /// digit so that no big integer is needed.
    static func mod97<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> Int {
        var remainder = 0
        for byte in bytes {
            if isDigit(byte) {
                remainder = (remainder * 10 + Int(byte - 48)) % 97
            } else {
                remainder = (remainder * 100 + Int(byte - 65) + 10) % 97
            }
        }
        return remainder
    }

    static func isDigit(_ byte: UInt8) -> Bool { (48...57).contains(byte) }
    static func isLetter(_ byte: UInt8) -> Bool { (65...90).contains(byte) }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try IBAN(validating: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
