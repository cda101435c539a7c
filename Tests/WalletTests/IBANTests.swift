import Foundation
import Testing
import VaultTestSupport
import Wallet

/// Published example IBANs (the SWIFT IBAN registry and the banks' own documentation), in print
/// form.
private let publishedIBANs = [
    "GB82 WEST 1234 5698 7654 32",
    "DE89 3704 0044 0532 0130 00",
    "AT61 1904 3002 3457 3201",
    "CH93 0076 2011 6238 5295 7",
    "NL91 ABNA 0417 1643 00",
    "LU28 0019 4006 4475 0000",
    "LT12 1000 0111 0100 1000",
    "IE29 AIBK 9311 5212 3456 78",
    "FR14 2004 1010 0505 0001 3M02 606",
    "BE68 5390 0754 7034",
]

private func electronic(_ printed: String) -> String { printed.replacingOccurrences(of: " ", with: "") }

@Suite("IBAN")
struct IBANTests {
    @Test("IBAN(country:bban:) reproduces the published check digits", arguments: publishedIBANs)
    func checkDigits(printed: String) {
        let compact = electronic(printed)
        let country = String(compact.prefix(2))
        let check = String(compact.dropFirst(2).prefix(2))
        let bban = String(compact.dropFirst(4))
        let iban = IBAN(country: country, bban: bban)
        #expect(iban.rawValue == compact)
        #expect(iban.checkDigits == check)
        #expect(referenceCheckDigits(country: country, bban: bban) == check)
    }

    @Test("Check digits below 10 keep their leading zero")
    func singleDigitCheck() throws {
        // About one BBAN in twelve has check digits 02 to 09; 2,000 consecutive accounts have many.
        var seen = Set<String>()
        for account in 0..<2000 {
            let bban = "99999999" + String(repeating: "0", count: 6) + String(format: "%04d", account)
            let iban = IBAN(country: "DE", bban: bban)
            #expect(iban.rawValue.count == 22)
            #expect(try IBAN(validating: iban.rawValue) == iban)
            #expect(iban.checkDigits == referenceCheckDigits(country: "DE", bban: bban))
            let check = try #require(Int(iban.checkDigits))
            #expect((2...98).contains(check))
            if check < 10 {
                #expect(iban.checkDigits.count == 2 && iban.checkDigits.first == "0")
                seen.insert(iban.checkDigits)
            }
        }
        #expect(!seen.isEmpty, "no check digits below 10 in the sample")
    }

    @Test("Print and electronic forms are accepted and give the electronic form", arguments: publishedIBANs)
    func acceptsBothForms(printed: String) throws {
        let compact = electronic(printed)
        let fromPrint = try IBAN(validating: printed)
        let fromElectronic = try IBAN(validating: compact)
        let fromLower = try IBAN(validating: printed.lowercased())
        #expect(fromPrint.rawValue == compact)
        #expect(fromElectronic == fromPrint)
        #expect(fromLower == fromPrint)
        #expect(fromPrint.description == compact)
        // Spaces anywhere are dropped.
        let spaced = " " + compact.map { "\($0) " }.joined()
        #expect((try? IBAN(validating: spaced)) == fromPrint)
    }

    @Test("A changed character is refused", arguments: publishedIBANs)
    func changedCharacter(printed: String) {
        let compact = Array(electronic(printed))
        // MOD 97-10 catches every single substitution: try each position with every other digit
        // (or, at letter positions, every other letter).
        var tried = 0
        for index in compact.indices where index != 0 && index != 1 {
            let replacements: [Character] =
                compact[index].isNumber
                ? Array("0123456789") : Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
            for replacement in replacements where replacement != compact[index] {
                var changed = compact
                changed[index] = replacement
                tried += 1
                let code = errorCode { try IBAN(validating: String(changed)) }
                #expect(code == .invalidIBAN, "accepted \(String(changed))")
            }
        }
        #expect(tried > 100)
    }

    @Test("Two swapped adjacent characters are refused", arguments: publishedIBANs)
    func swappedNeighbours(printed: String) {
        let compact = Array(electronic(printed))
        var tried = 0
        for index in 2..<(compact.count - 1) where compact[index] != compact[index + 1] {
            var swapped = compact
            swapped.swapAt(index, index + 1)
            tried += 1
            let code = errorCode { try IBAN(validating: String(swapped)) }
            #expect(code == .invalidIBAN, "swap at \(index) accepted: \(String(swapped))")
        }
        #expect(tried > 5)
    }

    @Test(
        "Bad lengths and characters are refused",
        arguments: [
            "",
            "DE89",
            "DE89 3704 0044 05",  // 14 characters: below the shortest IBAN (Norway, 15)
            "DE89370400440532013000" + String(repeating: "0", count: 13),  // 35 characters
            "DE89 3704 0044 0532 0130 0",  // a digit dropped
            "DE89 3704 0044 0532 0130 000",  // a digit added
            "DE89-3704-0044-0532-0130-00",
            "DE89\t3704\t0044\t0532\t0130\t00",
            "DE89 3704 0044 0532 0130 00\n",
            "D189 3704 0044 0532 0130 00",  // the country must be letters
            "DEX9 3704 0044 0532 0130 00",  // the check digits must be digits
            "DE89 3704 0044 0532 0130 0@",
            "DE89 3704 0044 0532 0130 0é",
            "DE89 3704 0044 0532 0130 0０",  // a full-width zero
        ])
    func badInput(text: String) {
        #expect(errorCode { try IBAN(validating: text) } == .invalidIBAN)
    }

    @Test("Letters outside A-Z are refused, even those that upper-case to A-Z")
    func nonASCIILetters() {
        // "ı" (dotless i) upper-cases to "I", "ß" to "SS", "ﬀ" to "FF": an IBAN is ASCII only.
        let valid = IBAN(country: "GB", bban: "SSIF12345698765432")
        #expect((try? IBAN(validating: valid.rawValue)) == valid)
        let lookalikes = [
            valid.rawValue.replacingOccurrences(of: "SS", with: "ß"),
            valid.rawValue.replacingOccurrences(of: "SSI", with: "SSı"),
            valid.rawValue.replacingOccurrences(of: "IF", with: "ıF"),
        ]
        for text in lookalikes {
            #expect(errorCode { try IBAN(validating: text) } == .invalidIBAN, "accepted \(text)")
        }
    }

    @Test("formatted groups by four, the last group shorter")
    func formatted() throws {
        #expect(try IBAN(validating: "GB82WEST12345698765432").formatted == "GB82 WEST 1234 5698 7654 32")
        #expect(try IBAN(validating: "BE68539007547034").formatted == "BE68 5390 0754 7034")
        #expect(try IBAN(validating: "CH9300762011623852957").formatted == "CH93 0076 2011 6238 5295 7")
        for printed in publishedIBANs {
            #expect(try IBAN(validating: electronic(printed)).formatted == printed)
        }
    }

    @Test("Codable round-trips and validates what it decodes")
    func codable() throws {
        let iban = try IBAN(validating: "DE89370400440532013000")
        let data = try JSONEncoder().encode([iban])
        #expect(String(decoding: data, as: UTF8.self) == #"["DE89370400440532013000"]"#)
        #expect(try JSONDecoder().decode([IBAN].self, from: data) == [iban])
        let tampered = Data(#"["DE89370400440532013001"]"#.utf8)
        #expect(throws: (any Error).self) { try JSONDecoder().decode([IBAN].self, from: tampered) }
    }
}

@Suite("Virtual account numbering")
struct VirtualAccountNumberingTests {
    /// Country, a bank code of the right shape, the IBAN length.
    static let supported: [(String, String, Int)] = [
        ("AT", "19043", 20), ("CH", "00762", 21), ("DE", "37040044", 22), ("GB", "WEST123456", 22),
        ("IE", "AIBK931152", 22), ("LI", "08810", 21), ("LT", "10000", 20), ("LU", "001", 20),
        ("NL", "ABNA", 18),
    ]

    @Test("The supported countries are those without national check digits in the BBAN")
    func supportedCountries() {
        #expect(VirtualAccountNumbering.supportedCountries == ["AT", "CH", "DE", "GB", "IE", "LI", "LT", "LU", "NL"])
        for country in ["FR", "ES", "IT", "BE", "PT", "XX", "de", ""] {
            #expect(
                errorCode { try VirtualAccountNumbering(country: country, bankCode: "12345") }
                    == .invalidAccountNumbering, "\(country) accepted")
        }
    }

    @Test("The default is Germany under bank code 99999999")
    func defaultNumbering() {
        let numbering = VirtualAccountNumbering.default
        #expect(numbering.country == "DE")
        #expect(numbering.bankCode == "99999999")
        #expect(numbering.capacity == 9_999_999_999)
        let first = numbering.iban(sequence: 1).rawValue
        #expect(first == "DE" + referenceCheckDigits(country: "DE", bban: "999999990000000001") + "999999990000000001")
    }

    @Test(
        "Bank codes of the wrong shape are refused",
        arguments: [
            ("DE", "3704004"), ("DE", "370400441"), ("DE", "3704004A"), ("DE", ""), ("AT", "1904"),
            ("NL", "ABN1"), ("NL", "abna"), ("NL", "ABNAB"), ("GB", "WEST12345"), ("GB", "1EST123456"),
            ("GB", "WEST12345A"), ("IE", "AIBK93115"), ("LU", "0019"), ("CH", "0076 "), ("LT", "1000٠"),
        ])
    func badBankCodes(country: String, bankCode: String) {
        #expect(
            errorCode { try VirtualAccountNumbering(country: country, bankCode: bankCode) } == .invalidAccountNumbering)
    }

    @Test("iban(sequence:) makes valid IBANs of the country's length, distinct per sequence")
    func ibans() throws {
        var generator = SeededGenerator(seed: 0x1BA4)
        for (country, bankCode, length) in Self.supported {
            let numbering = try VirtualAccountNumbering(country: country, bankCode: bankCode)
            #expect(numbering.country == country && numbering.bankCode == bankCode)
            var sequences: [Int64] = [1, 2, 9, 10, 99, numbering.capacity - 1, numbering.capacity]
            for _ in 0..<50 { sequences.append(Int64.random(in: 1...numbering.capacity, using: &generator)) }
            var seen = Set<IBAN>()
            for sequence in Set(sequences) {
                let iban = numbering.iban(sequence: sequence)
                #expect(iban.rawValue.count == length, "\(iban)")
                let bban = String(iban.rawValue.dropFirst(4))
                #expect(iban.checkDigits == referenceCheckDigits(country: country, bban: bban))
                #expect(iban.rawValue.hasPrefix(country))
                #expect(iban.rawValue.dropFirst(4).hasPrefix(bankCode))
                #expect(try IBAN(validating: iban.rawValue) == iban)
                #expect(try IBAN(validating: iban.formatted) == iban)
                // The account part is the sequence, zero-padded.
                #expect(Int64(iban.rawValue.dropFirst(4 + bankCode.count)) == sequence)
                seen.insert(iban)
            }
            #expect(seen.count == Set(sequences).count)
        }
    }

    @Test("Capacity is every account number the account part can hold")
    func capacity() throws {
        let expected: [String: Int64] = [
            "AT": 99_999_999_999, "CH": 999_999_999_999, "DE": 9_999_999_999, "GB": 99_999_999,
            "IE": 99_999_999, "LI": 999_999_999_999, "LT": 99_999_999_999, "LU": 9_999_999_999_999,
            "NL": 9_999_999_999,
        ]
        for (country, bankCode, _) in Self.supported {
            let numbering = try VirtualAccountNumbering(country: country, bankCode: bankCode)
            #expect(numbering.capacity == expected[country], "\(country)")
            let last = numbering.iban(sequence: numbering.capacity)
            #expect(!last.rawValue.dropFirst(4 + bankCode.count).contains { $0 != "9" })
        }
    }
}

/// The code of the WalletError `body` throws, or `nil` when it throws nothing or another error.
private func errorCode<R>(_ body: () throws -> R) -> WalletError.Code? {
    do {
        _ = try body()
        return nil
    } catch let error as WalletError {
        return error.code
    } catch {
        return nil
    }
}

/// ISO 7064 MOD 97-10 check digits computed independently of the code under test: letters
/// expanded to their two-digit values, then the number reduced nine digits at a time (the
/// piece-wise method of ECBS TR 201).
private func referenceCheckDigits(country: String, bban: String) -> String {
    var digits = ""
    for character in (bban + country + "00") {
        if let value = character.wholeNumberValue, character.isASCII {
            digits += String(value)
        } else {
            digits += String(Int(character.asciiValue!) - Int(Character("A").asciiValue!) + 10)
        }
    }
    var remainder = 0
    var rest = Substring(digits)
    while !rest.isEmpty {
        let take = remainder == 0 ? 9 : 7
        remainder = Int(String(remainder) + rest.prefix(take))! % 97
        rest = rest.dropFirst(take)
    }
    let check = 98 - remainder
    return check < 10 ? "0\(check)" : "\(check)"
}
