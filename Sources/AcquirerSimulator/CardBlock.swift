import CardTokens

/// The opened card block of an authorization: `{"pan":"…","exp_month":12,"exp_year":2030,"cvv":"737"}`
/// (`cvv` absent or `null` for a stored-credential charge).
///
/// It is parsed in place, in the wiped buffer the sealed box was opened into: the PAN and CVV
/// are never copied into a Swift `String`. Only what the rules need leaves the parser: BIN,
/// last four, which test card it is, and whether the CVV matched.
struct CardBlock {
    /// What the rules may know of a card.
    struct Facts: Sendable, Hashable {
        var bin: String
        var last4: String
        var expMonth: Int
        var expYear: Int
        var testCard: TestCardRule?
        /// `nil` when no CVV was sent.
        var cvvMatches: Bool?
    }

    /// The published test numbers the simulator answers by rule.
    enum TestCardRule: Sendable, Hashable {
        case doNotHonor
        case insufficientFunds
    }

    static let doNotHonorPAN = Array("4000000000000002".utf8)
    static let insufficientFundsPAN = Array("4000000000009995".utf8)
    /// The one CVV the simulator accepts: `737`, or `7373` on four-digit cards (Amex).
    static let expectedCVV = Array("737".utf8)
    static let expectedFourDigitCVV = Array("7373".utf8)

    /// Parses `json` and returns what the rules may know, or `nil` if it is not a well-formed card
    /// block (the caller answers `400 invalid_card` and echoes nothing).
    static func facts(of json: UnsafeRawBufferPointer) -> Facts? {
        var parser = Parser(bytes: json)
        guard let fields = parser.object(),
            let pan = fields.pan.map({ UnsafeRawBufferPointer(rebasing: json[$0]) }),
            (12...19).contains(pan.count), pan.allSatisfy(isDigit), Luhn.isValid(digits: pan),
            let expMonth = fields.expMonth, (1...12).contains(expMonth),
            let expYear = fields.expYear, (2000...9999).contains(expYear)
        else { return nil }
        var cvvMatches: Bool?
        if let range = fields.cvv {
            let cvv = UnsafeRawBufferPointer(rebasing: json[range])
            guard (3...4).contains(cvv.count), cvv.allSatisfy(isDigit) else { return nil }
            let expected = CardBrand(panDigits: pan).cvvLength == 4 ? expectedFourDigitCVV : expectedCVV
            cvvMatches = cvv.elementsEqual(expected)
        }
        let testCard: TestCardRule? =
            pan.elementsEqual(doNotHonorPAN)
            ? .doNotHonor : pan.elementsEqual(insufficientFundsPAN) ? .insufficientFunds : nil
        return Facts(
            bin: String(decoding: pan.prefix(6), as: UTF8.self), last4: String(decoding: pan.suffix(4), as: UTF8.self),
            expMonth: expMonth, expYear: expYear, testCard: testCard, cvvMatches: cvvMatches)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (48...57).contains(byte) }

    /// A strict parser for one flat JSON object of strings, small integers, `null` and booleans.
    /// String values with escapes are refused (no card field needs one).
    private struct Parser {
        struct Fields {
            var pan: Range<Int>?
            var expMonth: Int?
            var expYear: Int?
            var cvv: Range<Int>?
        }

        enum Value {
            case string(Range<Int>)
            case integer(Int)
            case null
            case boolean
        }

        let bytes: UnsafeRawBufferPointer
        var offset = 0

        mutating func object() -> Fields? {
            var fields = Fields()
            var seen = Set<String>()
            skipSpace()
            guard take(UInt8(ascii: "{")) else { return nil }
            skipSpace()
            if !take(UInt8(ascii: "}")) {
                while true {
                    skipSpace()
                    guard case .string(let keyRange)? = value() else { return nil }
                    let key = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[keyRange]), as: UTF8.self)
                    guard seen.insert(key).inserted else { return nil }
                    skipSpace()
                    guard take(UInt8(ascii: ":")) else { return nil }
                    skipSpace()
                    guard let value = value() else { return nil }
                    switch (key, value) {
                    case ("pan", .string(let range)): fields.pan = range
                    case ("cvv", .string(let range)): fields.cvv = range
                    case ("cvv", .null): fields.cvv = nil
                    case ("exp_month", .integer(let month)): fields.expMonth = month
                    case ("exp_year", .integer(let year)): fields.expYear = year
                    case ("pan", _), ("cvv", _), ("exp_month", _), ("exp_year", _): return nil
                    default: break  // an unknown field is ignored
                    }
                    skipSpace()
                    if take(UInt8(ascii: "}")) { break }
                    guard take(UInt8(ascii: ",")) else { return nil }
                }
            }
            skipSpace()
            return offset == bytes.count ? fields : nil
        }

        private mutating func value() -> Value? {
            guard offset < bytes.count else { return nil }
            switch bytes[offset] {
            case UInt8(ascii: "\""):
                offset += 1
                let start = offset
                while offset < bytes.count, bytes[offset] != UInt8(ascii: "\"") {
                    // No escapes, no control characters.
                    guard bytes[offset] != UInt8(ascii: "\\"), bytes[offset] >= 0x20 else { return nil }
                    offset += 1
                }
                guard offset < bytes.count else { return nil }
                offset += 1
                return .string(start..<offset - 1)
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                var number = 0
                var digits = 0
                while offset < bytes.count, isDigit(bytes[offset]) {
                    digits += 1
                    guard digits <= 9 else { return nil }
                    number = number * 10 + Int(bytes[offset] - 48)
                    offset += 1
                }
                return .integer(number)
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            case UInt8(ascii: "t"): return literal("true") ? .boolean : nil
            case UInt8(ascii: "f"): return literal("false") ? .boolean : nil
            default: return nil
            }
        }

        private mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard offset + count <= bytes.count else { return false }
            let matches = word.withUTF8Buffer { bytes[offset..<offset + count].elementsEqual($0) }
            if matches { offset += count }
            return matches
        }

        private mutating func take(_ byte: UInt8) -> Bool {
            guard offset < bytes.count, bytes[offset] == byte else { return false }
            offset += 1
            return true
        }

        private mutating func skipSpace() {
            while offset < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[offset]) { offset += 1 }
        }
    }
}
