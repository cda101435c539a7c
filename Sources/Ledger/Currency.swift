/// An ISO 4217 currency and its minor-unit exponent (2 for EUR: amounts are in cents).
public struct Currency: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The alphabetic code, e.g. `EUR`.
    public let code: String
    /// Minor units per major unit, as a power of ten.
    public let exponent: Int

    /// The exponents of the currencies the ledger knows (ISO 4217 list one).
    public static let exponents: [String: Int] = [
        "AED": 2, "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2, "CZK": 2, "DKK": 2,
        "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0,
        "KRW": 0, "KWD": 3, "MXN": 2, "MYR": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PHP": 2, "PLN": 2, "RON": 2,
        "SAR": 2, "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2, "USD": 2, "VND": 0, "ZAR": 2,
    ]

    /// The currency with this ISO 4217 code.
    /// - Throws: ``LedgerError`` `unknown_currency` for a code not in ``exponents``.
    public init(_ code: String) throws(LedgerError) {
        guard let exponent = Self.exponents[code] else {
            throw LedgerError(.unknownCurrency, "currency must be an ISO 4217 code the ledger knows, e.g. EUR")
        }
        self.code = code
        self.exponent = exponent
    }

    public var description: String { code }
}
