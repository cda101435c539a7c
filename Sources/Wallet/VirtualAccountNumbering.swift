/// How virtual account numbers are made: IBANs under one country and bank code, the account
/// part being a sequence number that is never reused (see ``WalletService``).
///
/// Only countries whose BBAN is a bank code followed by a plain account number are supported:
/// countries with national check digits inside the BBAN (France, Spain, Italy, Belgium, …)
/// would need their own algorithm and are refused.
public struct VirtualAccountNumbering: Sendable, Hashable {
    /// The BBAN layout of a country: the bank code's shape (`a` letter, `n` digit) and how many
    /// digits the account number has.
    struct Layout: Sendable, Hashable {
        var bankCode: String
        var accountDigits: Int
    }

    static let layouts: [String: Layout] = [
        "DE": Layout(bankCode: "nnnnnnnn", accountDigits: 10),
        "AT": Layout(bankCode: "nnnnn", accountDigits: 11),
        "CH": Layout(bankCode: "nnnnn", accountDigits: 12),
        "LI": Layout(bankCode: "nnnnn", accountDigits: 12),
        "LT": Layout(bankCode: "nnnnn", accountDigits: 11),
        "LU": Layout(bankCode: "nnn", accountDigits: 13),
        "NL": Layout(bankCode: "aaaa", accountDigits: 10),
        // Bank code and sort code together, e.g. WEST123456.
        "GB": Layout(bankCode: "aaaannnnnn", accountDigits: 8),
        "IE": Layout(bankCode: "aaaannnnnn", accountDigits: 8),
    ]

    /// The supported country codes, sorted.
    public static var supportedCountries: [String] { layouts.keys.sorted() }

    /// The default: Germany under bank code 99999999, which no German bank uses (a Bankleitzahl
    /// starts with a clearing area 1 to 8), so numbers cannot collide with real accounts.
    public static let `default` = try! VirtualAccountNumbering(country: "DE", bankCode: "99999999")

    public let country: String
    public let bankCode: String
    /// The largest sequence number that fits the account part.
    public let capacity: Int64
    let accountDigits: Int

    /// - Throws: ``WalletError`` `invalid_account_numbering` for an unsupported country or a
    ///   bank code of the wrong shape for it.
    public init(country: String, bankCode: String) throws(WalletError) {
        guard let layout = Self.layouts[country] else {
            throw WalletError(
                .invalidAccountNumbering,
                "IBAN country must be one of \(Self.supportedCountries.joined(separator: ", "))")
        }
        let code = Array(bankCode.utf8)
        let shape = Array(layout.bankCode.utf8)
        guard code.count == shape.count,
            zip(code, shape).allSatisfy({ byte, kind in
                kind == UInt8(ascii: "a") ? IBAN.isLetter(byte) : IBAN.isDigit(byte)
            })
        else {
            throw WalletError(
                .invalidAccountNumbering,
                "bank code for \(country) must have the shape \(layout.bankCode) (a = A-Z, n = 0-9)")
        }
        self.country = country
        self.bankCode = bankCode
        self.accountDigits = layout.accountDigits
        var capacity: Int64 = 1
        for _ in 0..<min(layout.accountDigits, 18) { capacity *= 10 }
        self.capacity = capacity - 1
    }

    /// The IBAN of account `sequence` (1…``capacity``).
    public func iban(sequence: Int64) -> IBAN {
        precondition((1...capacity).contains(sequence), "sequence out of range")
        let digits = String(sequence)
        let account = String(repeating: "0", count: accountDigits - digits.count) + digits
        return IBAN(country: country, bban: bankCode + account)
    }
}
