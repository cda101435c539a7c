public import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Card data as the frontend sends it: validated on the way in, and write-only.
///
/// A PAN or CVV goes in and never comes out through public API: there is no property, no
/// `description` and no `Codable` conformance that would show it. Only the vault reads the
/// digits, through the `CardholderData` SPI, to encrypt them. The digits live in a private
/// buffer that is zeroed when the value is released.
public final class CardInput: @unchecked Sendable {
    // @unchecked: the buffers are written once in init and wiped once in deinit.
    private let pan: UnsafeMutableBufferPointer<UInt8>
    private let cvv: UnsafeMutableBufferPointer<UInt8>?
    /// Expiry month, 1–12.
    public let expMonth: Int
    /// Four-digit expiry year.
    public let expYear: Int
    /// The brand, from the PAN's IIN.
    public let brand: CardBrand
    /// The first six digits.
    public let bin: String
    /// The last four digits.
    public let last4: String

    /// The smallest and largest PAN lengths accepted (ISO/IEC 7812).
    public static let panLengths = 12...19

    /// Validates card data.
    /// - Parameters:
    ///   - pan: 12 to 19 digits; spaces and dashes are ignored. Must pass the Luhn check.
    ///   - expMonth: 1–12.
    ///   - expYear: a four-digit year; the card is valid through the end of its expiry month.
    ///   - cvv: optional; 3 digits, or 4 for American Express.
    ///   - now: the current time (UTC), to refuse expired cards.
    /// - Throws: ``CardValidationError`` naming the rule that failed, never the input.
    public convenience init(
        pan: String, expMonth: Int, expYear: Int, cvv: String?, now: Date = Date()
    ) throws(CardValidationError) {
        var digits = [UInt8]()
        digits.reserveCapacity(19)
        var tooLong = false
        for byte in pan.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if digits.count < 19 { digits.append(byte) } else { tooLong = true }
            case UInt8(ascii: " "), UInt8(ascii: "-"):
                continue
            default:
                Self.wipe(&digits)
                throw CardValidationError(.panNotNumeric, "pan must contain only digits, spaces and dashes")
            }
        }
        defer { Self.wipe(&digits) }
        guard !tooLong else { throw CardValidationError(.panLength, "pan must have 12 to 19 digits") }
        try self.init(digits: digits, expMonth: expMonth, expYear: expYear, cvv: cvv, now: now)
    }

    /// Validates a PAN the vault made itself (a card it issues): the same rules, from ASCII digits
    /// that never pass through a `String`. Behind the SPI like ``withPANDigits(_:)``.
    /// - Throws: ``CardValidationError`` naming the rule that failed, never the input.
    @_spi(CardholderData)
    public convenience init(
        panDigits: UnsafeBufferPointer<UInt8>, expMonth: Int, expYear: Int, now: Date = Date()
    ) throws(CardValidationError) {
        var digits = Array(panDigits)
        defer { Self.wipe(&digits) }
        guard digits.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) else {
            throw CardValidationError(.panNotNumeric, "pan must contain only digits")
        }
        try self.init(digits: digits, expMonth: expMonth, expYear: expYear, cvv: nil, now: now)
    }

    /// The checks both initialisers share, on ASCII digits the caller wipes.
    private init(digits: [UInt8], expMonth: Int, expYear: Int, cvv: String?, now: Date) throws(CardValidationError) {
        guard Self.panLengths.contains(digits.count) else {
            throw CardValidationError(.panLength, "pan must have 12 to 19 digits")
        }
        guard Luhn.isValid(digits: digits) else {
            throw CardValidationError(.panLuhn, "pan fails the Luhn check")
        }
        guard (1...12).contains(expMonth) else {
            throw CardValidationError(.expiryMonth, "exp_month must be 1 to 12")
        }
        guard (2000...2099).contains(expYear) else {
            throw CardValidationError(.expiryYear, "exp_year must be a four-digit year")
        }
        if (expYear, expMonth) < Self.yearAndMonth(of: now) {
            throw CardValidationError(.expired, "the card has expired")
        }
        let brand = CardBrand(panDigits: digits)
        var cvvDigits: [UInt8]?
        if let cvv {
            var bytes = Array(cvv.utf8)
            defer { Self.wipe(&bytes) }
            guard bytes.count == brand.cvvLength, bytes.allSatisfy({ (48...57).contains($0) }) else {
                throw CardValidationError(
                    .cvv, brand == .amex ? "cvv must be 4 digits for American Express" : "cvv must be 3 digits")
            }
            cvvDigits = bytes
        }
        self.pan = Self.copy(digits)
        if var cvvDigits {
            self.cvv = Self.copy(cvvDigits)
            Self.wipe(&cvvDigits)
        } else {
            self.cvv = nil
        }
        self.expMonth = expMonth
        self.expYear = expYear
        self.brand = brand
        self.bin = String(decoding: digits.prefix(6), as: UTF8.self)
        self.last4 = String(decoding: digits.suffix(4), as: UTF8.self)
    }

    /// The UTC year and month of `date` (gmtime_r; a `Calendar` costs more than the rest of
    /// the validation).
    static func yearAndMonth(of date: Date) -> (Int, Int) {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return (Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1)
    }

    deinit {
        Self.zero(pan)
        pan.deallocate()
        if let cvv {
            Self.zero(cvv)
            cvv.deallocate()
        }
    }

    /// The number of PAN digits.
    public var panLength: Int { pan.count }

    /// Whether a CVV was given.
    public var hasCVV: Bool { cvv != nil }

    /// Gives the vault the PAN's ASCII digits. Not for use outside the cardholder-data
    /// environment; a test asserts that no target outside it imports this SPI.
    @_spi(CardholderData)
    public func withPANDigits<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(pan))
    }

    /// Gives the vault the CVV's ASCII digits, if any. Same restrictions as ``withPANDigits(_:)``.
    @_spi(CardholderData)
    public func withCVVDigits<R>(_ body: (UnsafeBufferPointer<UInt8>?) throws -> R) rethrows -> R {
        try body(cvv.map { UnsafeBufferPointer($0) })
    }

    private static func copy(_ bytes: [UInt8]) -> UnsafeMutableBufferPointer<UInt8> {
        let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: bytes.count)
        _ = buffer.initialize(from: bytes)
        return buffer
    }

    private static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBufferPointer { zero($0) }
        bytes.removeAll()
    }

    /// Zeroes through a volatile-like loop the optimiser keeps (the buffer escapes to the
    /// allocator right after, so the stores are observable).
    private static func zero(_ buffer: UnsafeMutableBufferPointer<UInt8>) {
        guard let base = buffer.baseAddress else { return }
        for index in 0..<buffer.count {
            UnsafeMutableRawPointer(base + index).storeBytes(of: 0, as: UInt8.self)
        }
        withExtendedLifetime(buffer) {}
    }
}

extension CardInput: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "CardInput(brand: \(brand.rawValue), redacted)" }
    public var debugDescription: String { description }
}
