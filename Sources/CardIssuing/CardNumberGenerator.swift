@_spi(CardholderData) package import CardTokens
package import Foundation
import TokenVault
import VaultCrypto

/// Draws the card numbers the vault issues: the issuing BIN, then digits from the CSPRNG, then
/// the Luhn check digit (ISO/IEC 7812-1).
package struct CardNumberGenerator: Sendable {
    /// The BIN used when none is configured. `999999`: ISO/IEC 7812 leaves major industry
    /// identifier 9 to national use and no card network assigns it, so no real card can carry
    /// this number and brand detection reads it as `unknown` (CardBrand). A production issuer
    /// configures the BIN its network assigned.
    package static let defaultBIN = "999999"
    /// The lengths a BIN may have: six digits, or eight since the networks' 2022 move.
    package static let binLengths: Set = [6, 8]
    /// Sixteen digits, the length of almost every card; up to nineteen by configuration.
    package static let defaultLength = 16
    package static let lengths = 16...19

    /// A decimal digit, 0 to 9, uniformly distributed: the CSPRNG in production; tests shrink
    /// the number space with their own.
    package typealias DigitSource = @Sendable () -> UInt8

    /// libsodium's `randombytes_uniform(10)`: uniform, without modulo bias.
    package static let secureDigit: DigitSource = { UInt8(SecureRandom.uniform(10)) }

    package let bin: String
    package let length: Int
    private let randomDigit: DigitSource

    /// - Throws: ``VaultError`` `invalid_argument` for a BIN that is not 6 or 8 digits, or a
    ///   length outside 16…19.
    package init(bin: String, length: Int = defaultLength, randomDigit: @escaping DigitSource = secureDigit) throws {
        guard Self.binLengths.contains(bin.utf8.count), bin.utf8.allSatisfy({ (48...57).contains($0) }) else {
            throw VaultError(.invalidArgument, "the issuing BIN must be 6 or 8 digits")
        }
        guard Self.lengths.contains(length) else {
            throw VaultError(.invalidArgument, "the issuing PAN length must be 16 to 19 digits")
        }
        self.bin = bin
        self.length = length
        self.randomDigit = randomDigit
    }

    /// A new card under the BIN with this expiry. The digits are drawn into a buffer wiped on
    /// release and copied only into the card's own wiped storage.
    /// - Throws: ``CardValidationError`` (never for a well-formed generator and a future expiry).
    package func card(expMonth: Int, expYear: Int, now: Date) throws -> CardInput {
        let digits = SecretBytes(zeroedCount: length, protection: .wipedOnRelease)
        defer { digits.wipe() }
        digits.withUnsafeMutableBytes { buffer in
            buffer.copyBytes(from: bin.utf8)
            for index in bin.utf8.count..<(length - 1) { buffer[index] = UInt8(ascii: "0") + randomDigit() }
            // With 0 in the check position (which Luhn does not double), the sum is short of a
            // multiple of ten by exactly the check digit.
            buffer[length - 1] = UInt8(ascii: "0")
            let checksum = Luhn.checksum(digits: UnsafeRawBufferPointer(buffer))
            buffer[length - 1] = UInt8(ascii: "0") + UInt8((10 - checksum) % 10)
        }
        return try digits.withUnsafeBytes { buffer in
            try CardInput(
                panDigits: buffer.assumingMemoryBound(to: UInt8.self), expMonth: expMonth,
                expYear: expYear, now: now)
        }
    }
}
