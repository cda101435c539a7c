import Ledger
import Testing

@Suite("Currency")
struct CurrencyTests {
    @Test(
        "Known ISO 4217 codes carry their minor-unit exponent",
        arguments: [
            ("EUR", 2), ("USD", 2), ("GBP", 2), ("JPY", 0), ("KRW", 0), ("CLP", 0), ("KWD", 3), ("BHD", 3),
            ("JOD", 3), ("OMR", 3), ("TND", 3),
        ])
    func knownCodes(code: String, exponent: Int) throws {
        let currency = try Currency(code)
        #expect(currency.code == code)
        #expect(currency.exponent == exponent)
        #expect(currency.description == code)
        #expect(Currency.exponents[code] == exponent)
    }

    @Test("Unknown, lower-case and malformed codes are refused", arguments: ["XXX", "eur", "", "EURO", "E", "€"])
    func unknownCodes(code: String) {
        let error = #expect(throws: LedgerError.self) { try Currency(code) }
        #expect(error?.code == .unknownCurrency)
    }

    @Test("Currencies with the same code are equal, others are not")
    func equality() throws {
        #expect(try Currency("EUR") == Currency("EUR"))
        #expect(try Currency("EUR") != Currency("USD"))
    }
}
