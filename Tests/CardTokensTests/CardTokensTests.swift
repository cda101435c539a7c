import CardTokens
import Testing

@Suite struct LuhnTests {
    @Test(arguments: ["4111111111111111", "4242424242424242", "5555555555554444", "378282246310005", "79927398713"])
    func validNumbersPass(_ number: String) {
        #expect(Luhn.isValid(digits: Array(number.utf8)))
    }

    @Test(arguments: ["4111111111111112", "79927398710", "1234567812345678"])
    func invalidNumbersFail(_ number: String) {
        #expect(!Luhn.isValid(digits: Array(number.utf8)))
    }

    @Test func everySingleDigitChangeIsCaught() {
        let digits = Array("4111111111111111".utf8)
        for index in digits.indices {
            for replacement in UInt8(ascii: "0")...UInt8(ascii: "9") where replacement != digits[index] {
                var changed = digits
                changed[index] = replacement
                #expect(!Luhn.isValid(digits: changed))
            }
        }
    }
}

@Suite struct CardBrandTests {
    @Test(arguments: [
        ("4111111111111111", CardBrand.visa), ("5555555555554444", .mastercard), ("2221000000000009", .mastercard),
        ("378282246310005", .amex), ("6011111111111117", .discover), ("3530111333300000", .jcb),
        ("30569309025904", .dinersClub), ("6200000000000005", .unionPay), ("9999999999999995", .unknown),
    ])
    func brandFromIIN(_ pan: String, _ brand: CardBrand) {
        #expect(CardBrand(panDigits: Array(pan.utf8)) == brand)
    }

    @Test func amexHoldsFourDigitCVV() {
        #expect(CardBrand.amex.cvvLength == 4)
        #expect(CardBrand.visa.cvvLength == 3)
    }
}

@Suite struct TokenTests {
    @Test func opaqueTokensParse() throws {
        let token = try Token(validating: "tok_-0123456789ABCDEFGHIJKLMNOPQRS")
        #expect(token.format == .opaque)
    }

    @Test(arguments: [
        "", "tok_", "tok_short", "tok_ABCDEFGHIJKLMNOPQRSTUv", "tok_-0123456789ABCDEFGHIJKLMNOPQRST",
        "tok_-0123456789ABCDEFGHIJKLMNOPQ+S", "4111111111111111",
        "41111111111", "abc",
    ])
    func malformedTokensAreRefused(_ string: String) {
        #expect(throws: CardValidationError.self) { try Token(validating: string) }
    }

    @Test func numericTokensMustFailLuhn() throws {
        // A Luhn-valid digit string could be a card number, so it is never a token.
        #expect(throws: CardValidationError.self) { try Token(validating: "4111111111111111") }
        #expect(try Token(validating: "4111111111111112").format == .numeric)
    }
}
