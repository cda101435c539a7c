public import CardTokens
public import Testing

/// Card data for tests: the networks' published test numbers, or generated Luhn-valid ones
/// (``PANGenerator``). Every suite that handles cards uses this one type.
public struct TestCard: Sendable, Hashable, CustomTestStringConvertible {
    /// As the test sends it: it may hold spaces, dashes or other characters on purpose.
    public var pan: String
    public var expMonth: Int
    public var expYear: Int
    public var cvv: String?
    /// The brand the PAN's prefix belongs to, decided by the test (not by `CardBrand`);
    /// `.unknown` where the test does not say.
    public var brand: CardBrand

    public init(
        pan: String, expMonth: Int = 12, expYear: Int = 2031, cvv: String? = nil, brand: CardBrand = .unknown
    ) {
        self.pan = pan
        self.expMonth = expMonth
        self.expYear = expYear
        self.cvv = cvv
        self.brand = brand
    }

    /// Never the digits: test names and failure messages stay free of card numbers.
    public var testDescription: String {
        "\(brand) card, \(digits.count) digits\(cvv == nil ? "" : ", with CVV")"
    }

    /// The PAN's ASCII digits, without spaces, dashes or anything else.
    public var digits: String { pan.filter { $0.isASCII && $0.isNumber } }
    public var bin: String { String(digits.prefix(6)) }
    public var last4: String { String(digits.suffix(4)) }

    /// What a masked reveal must show: BIN, `*` for every hidden digit, last four (the last
    /// four only below 15 digits).
    public var masked: String {
        digits.count >= 15
            ? bin + String(repeating: "*", count: digits.count - 10) + last4
            : String(repeating: "*", count: digits.count - 4) + last4
    }

    /// This card with another CVV (or none).
    public func with(cvv: String?) -> TestCard {
        var card = self
        card.cvv = cvv
        return card
    }

    public func input() throws -> CardInput {
        try CardInput(pan: pan, expMonth: expMonth, expYear: expYear, cvv: cvv)
    }

    public func request(format: TokenFormat = .opaque, dedupe: Bool = false) throws -> TokenizeRequest {
        TokenizeRequest(card: try input(), format: format, dedupe: dedupe)
    }

    /// The body of `POST /v1/tokens` (and of an entry of `POST /v1/tokens/batch`) for this card.
    public func json(format: String? = nil, dedupe: Bool? = nil) -> [String: Any] {
        var json: [String: Any] = ["pan": pan, "exp_month": expMonth, "exp_year": expYear]
        if let cvv { json["cvv"] = cvv }
        if let format { json["format"] = format }
        if let dedupe { json["dedupe"] = dedupe }
        return json
    }

    /// Published test numbers of the card networks.
    public static let visa = TestCard(pan: "4111111111111111", brand: .visa)
    public static let visa2 = TestCard(pan: "4242424242424242", brand: .visa)
    public static let mastercard = TestCard(pan: "5555555555554444", brand: .mastercard)
    public static let amex = TestCard(pan: "378282246310005", brand: .amex)
    public static let discover = TestCard(pan: "6011111111111117", brand: .discover)

    public static let published: [TestCard] = [.visa, .visa2, .mastercard, .amex, .discover]
}

/// Luhn-valid card numbers under prefixes well inside one network each.
public enum PANGenerator {
    /// IIN prefixes, the brand each belongs to, and the PAN lengths the network uses.
    public static let prefixes: [(prefix: String, brand: CardBrand, lengths: [Int])] = [
        ("4", .visa, [13, 16, 19]), ("51", .mastercard, [16]), ("55", .mastercard, [16]),
        ("2221", .mastercard, [16]), ("34", .amex, [15]), ("37", .amex, [15]), ("6011", .discover, [16, 19]),
        ("65", .discover, [16, 19]), ("3530", .jcb, [16]), ("36", .dinersClub, [14]), ("621", .unionPay, [16, 19]),
        ("50", .maestro, Array(12...19)), ("9", .unknown, [16]),
    ]

    /// A Luhn-valid PAN of `length` digits under a random known prefix (or under `prefix`, with
    /// brand `.unknown`).
    public static func pan<G: RandomNumberGenerator>(
        length: Int, prefix: String? = nil, using generator: inout G
    ) -> (pan: String, brand: CardBrand) {
        let chosen =
            prefix.map { ($0, CardBrand.unknown) } ?? prefixes.randomElement(using: &generator).map {
                ($0.prefix, $0.brand)
            }!
        let body = chosen.0 + TestLuhn.digits(length - 1 - chosen.0.count, using: &generator)
        return (TestLuhn.completing(body), chosen.1)
    }

    /// A card with a generated PAN, a future expiry and, if asked, a CVV of the brand's length.
    /// - Parameter length: the PAN's length (any the vault accepts, under any prefix); `nil`
    ///   for one the chosen prefix's network uses.
    public static func card<G: RandomNumberGenerator>(
        length: Int? = nil, withCVV: Bool = false, using generator: inout G
    ) -> TestCard {
        let pan: String
        let brand: CardBrand
        if let length {
            (pan, brand) = self.pan(length: length, using: &generator)
        } else {
            let chosen = prefixes.randomElement(using: &generator)!
            let length = chosen.lengths.randomElement(using: &generator)!
            pan = TestLuhn.completing(
                chosen.prefix + TestLuhn.digits(length - 1 - chosen.prefix.count, using: &generator))
            brand = chosen.brand
        }
        let cvv = withCVV ? TestLuhn.digits(brand == .amex ? 4 : 3, using: &generator) : nil
        return TestCard(
            pan: pan, expMonth: Int.random(in: 1...12, using: &generator),
            expYear: Int.random(in: 2031...2045, using: &generator), cvv: cvv, brand: brand)
    }

    /// `pan` with its check digit changed, so that it fails the Luhn check.
    public static func breakingLuhn(_ pan: String) -> String {
        let last = pan.last!.wholeNumberValue!
        return String(pan.dropLast()) + String((last + 1) % 10)
    }
}
