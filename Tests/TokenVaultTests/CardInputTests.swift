import Audit
import CardTokens
import Foundation
import GRDB
import InMemoryLogging
import Logging
import Synchronization
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

/// A short check of the validation the vault relies on (the full suite is in CardTokensTests).
@Suite("Card input")
struct CardInputTests {
    struct Invalid: Sendable, CustomTestStringConvertible {
        var pan: String
        var month = 12
        var year = 2031
        var cvv: String?
        var expected: CardValidationError.Code
        var testDescription: String { "\(expected)" }
    }

    static let invalid: [Invalid] = [
        Invalid(pan: "4111-1111-1111-111a", expected: .panNotNumeric),
        Invalid(pan: "41111111116", expected: .panLength),
        Invalid(pan: "41111111111111111111", expected: .panLength),
        Invalid(pan: "4111111111111112", expected: .panLuhn),
        Invalid(pan: "4111111111111111", month: 13, expected: .expiryMonth),
        Invalid(pan: "4111111111111111", month: 0, expected: .expiryMonth),
        Invalid(pan: "4111111111111111", month: 1, year: 2020, expected: .expired),
        Invalid(pan: "378282246310005", cvv: "123", expected: .cvv),
        Invalid(pan: "4111111111111111", cvv: "1234", expected: .cvv),
    ]

    @Test(arguments: invalid)
    func invalidInputIsRefusedWithoutEchoingIt(_ item: Invalid) {
        let error = #expect(throws: CardValidationError.self) {
            _ = try CardInput(pan: item.pan, expMonth: item.month, expYear: item.year, cvv: item.cvv)
        }
        #expect(error?.code == item.expected)
        let digits = item.pan.filter(\.isNumber)
        for text in [error.map { String(describing: $0) }, error?.message].compactMap({ $0 }) {
            #expect(!text.contains(item.pan) && !text.contains(digits), "\(text)")
        }
    }

    @Test func validInputIsAcceptedAndRedacted() throws {
        let input = try CardInput(pan: "3782 822463 10005", expMonth: 1, expYear: 2031, cvv: "1234")
        #expect(input.brand == .amex && input.bin == "378282" && input.last4 == "0005")
        #expect(input.panLength == 15 && input.hasCVV)
        for text in [String(describing: input), String(reflecting: input)] {
            #expect(!text.contains("378282246310005") && !text.contains("1234"), "\(text)")
        }
        // Valid through the end of the expiry month.
        let now = try #require(
            Calendar(identifier: .gregorian).date(
                from: DateComponents(
                    timeZone: TimeZone(identifier: "UTC"), year: 2030, month: 6, day: 30, hour: 23)))
        _ = try CardInput(pan: "4111111111111111", expMonth: 6, expYear: 2030, cvv: nil, now: now)
    }

    @Test func generatedPANsPassLuhnBothWays() {
        var generator = SeededGenerator()
        for length in CardInput.panLengths {
            for _ in 0..<50 {
                let pan = PANGenerator.pan(length: length, using: &generator).pan
                #expect(pan.count == length)
                #expect(Luhn.isValid(digits: Array(pan.utf8)), "seed \(generator.seed): \(pan)")
                #expect(TestLuhn.passes(pan))
            }
        }
        for pan in ["4111111111111111", "4242424242424242", "5555555555554444", "378282246310005", "6011111111111117"] {
            #expect(TestLuhn.passes(pan) && Luhn.isValid(digits: Array(pan.utf8)))
        }
    }
}
