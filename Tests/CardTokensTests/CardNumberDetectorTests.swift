import CardTokens
import Foundation
import Testing

@Suite("Card numbers in free text") struct CardNumberDetectorTests {
    static let published = [
        "4111111111111111", "4242424242424242", "5555555555554444", "2223003122003222", "378282246310005",
        "6011111111111117", "3530111333300000", "30569309025904", "4222222222222",
    ]

    @Test("Published test numbers are found bare, inside other text, and printed with spaces or dashes")
    func findsCardNumbers() {
        for pan in Self.published {
            let digits = Array(pan)
            let fours = stride(from: 0, to: digits.count, by: 4).map { String(digits[$0..<min($0 + 4, digits.count)]) }
            for text in [
                pan, "customer \(pan)", "ref:\(pan)", "\(pan)x", "a\(pan)b", fours.joined(separator: " "),
                fours.joined(separator: "-"), "order-" + fours.joined(separator: "-") + "-retry",
            ] {
                #expect(CardNumberDetector.containsCardNumber(text), "\(text)")
            }
        }
        #expect(CardNumberDetector.containsCardNumber("3782 822463 10005"), "Amex printed 4-6-5")
        #expect(CardNumberDetector.containsCardNumber("3056-930902-5904"), "Diners printed 4-6-4")
        #expect(CardNumberDetector.containsCardNumber("12 4111111111111111"), "a short run before does not hide it")
    }

    @Test("Ids, failed checks, other groupings and UUIDs are not card numbers")
    func leavesOtherTextAlone() {
        for text in [
            "", "customer-42", "4111111111111112",  // Luhn fails
            "9111111111111110",  // Luhn passes, no network starts with 9
            "411111111111",  // 12 digits
            "41111111111111111111111",  // 23 digits: an id, not a PAN
            "4111 1111-1111 1111",  // mixed separators
            "4111  1111 1111 1111",  // double space ends the run
            "41111111-1111-1111",  // 8-4-4, as in a UUID
            "4111-11111111-1111",  // 4-8-4
            "123e4567-e89b-12d3-a456-426614174000",
            "2026-11-21 12:00:00", "+49 30 1234567",
        ] {
            #expect(!CardNumberDetector.containsCardNumber(text), "\(text)")
        }
    }

    @Test("No UUID, however many of its characters are digits, looks like a card number")
    func uuidsNeverMatch() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5_000 {
            // Mostly digits, to give the detector every chance to be wrong.
            let text = UUID().uuidString.map { character -> Character in
                character == "-" || Int.random(in: 0..<4, using: &generator) == 0
                    ? character : Character(String(Int.random(in: 0...9, using: &generator)))
            }
            #expect(!CardNumberDetector.containsCardNumber(String(text)), "\(String(text))")
        }
    }

    @Test("Every Luhn-valid Visa number of 16 digits is found, and one digit changed is not")
    func luhnDecides() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            var body = "4" + (0..<14).map { _ in String(Int.random(in: 0...9, using: &generator)) }.joined()
            let check = (0...9).first { Luhn.isValid(digits: Array((body + String($0)).utf8)) }!
            body += String(check)
            #expect(CardNumberDetector.containsCardNumber(body))
            let wrong = body.dropLast() + String((check + 1) % 10)
            #expect(!CardNumberDetector.containsCardNumber(wrong))
        }
    }
}

@Suite("Luhn-valid digit runs (audit log fields)") struct LuhnValidRunTests {
    @Test(
        "Any window of 12 to 19 digits passing Luhn is found whatever its prefix; shorter runs and failing windows are not"
    )
    func runs() {
        for text in [
            "4111111111111111", "ref-9111111111111110", "x378282246310005y", "a123456789015", "000000000000",
            // A window inside a longer run: 411111111111111 (15 digits) passes, and so do windows
            // of runs over 19 digits.
            "4111111111111112", "41111111111111111111111",
        ] {
            #expect(CardNumberDetector.containsLuhnValidRun(text), "\(text)")
        }
        for text in ["", "12345678903", "123456789012", "abc", "2026-12-07"] {
            #expect(!CardNumberDetector.containsLuhnValidRun(text), "\(text)")
        }
    }

    /// Security review, issue 8, finding 10: a grouped card number passed the detokenize
    /// `reference` check (`4111-1111-1111-1111`, or with `.` or `/`) and landed in the audit log.
    @Test("Review of finding 5/10: a card number behind other digits, or in a run over 19 digits, is found")
    func cardNumbersInsideLongerRunsAreFound() {
        for pan in CardNumberDetectorTests.published {
            for text in [
                "9" + pan, "x9" + pan, "REF-9" + pan, "20261207" + pan, pan + "0000000", "ref:2026-1207" + pan,
                "unknown:9" + pan,
            ] {
                #expect(CardNumberDetector.containsLuhnValidRun(text), "\(text)")
            }
        }
        // Short chains stay allowed.
        for text in ["batch-2026-11-21", "case-7", "settlement-2026-12-07", "v1.2.3", "12345678901"] {
            #expect(!CardNumberDetector.containsLuhnValidRun(text), "\(text)")
        }
    }

    @Test("Finding 10: grouped card numbers are found whatever the separator and the grouping")
    func finding10GroupedNumbersAreFound() {
        for pan in CardNumberDetectorTests.published + ["000000000000"] {
            let digits = Array(pan)
            let fours = stride(from: 0, to: digits.count, by: 4).map { String(digits[$0..<min($0 + 4, digits.count)]) }
            for separator in [" ", "-", ".", "/", "_", ":"] {
                for text in [
                    fours.joined(separator: separator), "order" + separator + fours.joined(separator: separator),
                    "ref-2026-" + fours.joined(separator: separator), fours.joined(separator: separator) + "/retry",
                ] {
                    #expect(CardNumberDetector.containsLuhnValidRun(text), "\(text)")
                }
            }
        }
        for text in ["3782-822463-10005", "4111-11111111-1111", "4111111-111111111", "41/11/11/11/11/11/11/11"] {
            #expect(CardNumberDetector.containsLuhnValidRun(text), "\(text)")
        }
        // The wallet's rule (printed groupings only) takes dots, slashes and underscores too.
        for separator in [".", "/", "_"] {
            #expect(
                CardNumberDetector.containsCardNumber(["4111", "1111", "1111", "1111"].joined(separator: separator)))
            #expect(
                CardNumberDetector.containsCardNumber(
                    "owner " + ["3782", "822463", "10005"].joined(separator: separator)))
        }
        // Not joined: failing checks, too few or too many digits, digits split by letters or by
        // two separators.
        for text in [
            "batch-2026-01-01", "4111x1111x1111x1111", "4111--1111--1111--1111",
            "v1.2.3-build.45",
        ] {
            #expect(!CardNumberDetector.containsLuhnValidRun(text), "\(text)")
        }
    }
}
