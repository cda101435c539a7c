/// A card network, derived from the issuer identification number (IIN) ranges.
public enum CardBrand: String, Sendable, Codable, CaseIterable {
    case visa
    case mastercard
    case amex
    case discover
    case jcb
    case dinersClub = "diners_club"
    case unionPay = "unionpay"
    case maestro
    case unknown

    /// The brand of a PAN given as ASCII digits (at least 6 of them).
    ///
    /// Ranges follow the networks' published IIN tables (ISO/IEC 7812); where ranges
    /// overlap, the more specific prefix wins (e.g. Discover's 6011 before Maestro's 6).
    public init(panDigits digits: some Collection<UInt8>) {
        func prefix(_ length: Int) -> Int {
            digits.prefix(length).reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        }
        let two = prefix(2)
        let three = prefix(3)
        let four = prefix(4)
        let six = prefix(6)
        switch true {
        case digits.first == UInt8(ascii: "4"): self = .visa
        case (51...55).contains(two), (222_100...272_099).contains(six): self = .mastercard
        case two == 34 || two == 37: self = .amex
        case four == 6011, (644...649).contains(three), two == 65, (622_126...622_925).contains(six):
            self = .discover
        case (3528...3589).contains(four): self = .jcb
        case (300...305).contains(three), two == 36, two == 38, two == 39: self = .dinersClub
        case two == 62: self = .unionPay
        case two == 50, (56...58).contains(two), two == 63, two == 67: self = .maestro
        default: self = .unknown
        }
    }

    /// The CVV length this brand prints: 4 for American Express, 3 for the others.
    public var cvvLength: Int { self == .amex ? 4 : 3 }
}
