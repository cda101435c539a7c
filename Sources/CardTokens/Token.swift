/// An opaque reference to a card held in the vault. Safe to store and log: it carries no
/// cardholder data beyond what ``CardMetadata`` shows (a numeric token keeps BIN and last four).
public struct Token: Hashable, Sendable, Codable, CustomStringConvertible {
    /// The prefix of opaque tokens.
    public static let opaquePrefix = "tok_"
    /// The number of characters after the prefix of an opaque token: 22 bytes (a 48-bit
    /// millisecond timestamp and 128 random bits) in a URL-safe, order-preserving base64.
    public static let opaqueBodyLength = 30

    /// The token as the API shows it.
    public let rawValue: String

    /// Wraps a string already known to be a token (e.g. read back from the vault's own store).
    public init(unchecked rawValue: String) {
        self.rawValue = rawValue
    }

    /// Parses a token given by a client.
    /// - Throws: ``CardValidationError`` with code `invalid_token` when it is neither an opaque
    ///   nor a numeric token.
    public init(validating rawValue: String) throws(CardValidationError) {
        guard Self.format(of: rawValue) != nil else {
            throw CardValidationError(.token, "not a well-formed token")
        }
        self.rawValue = rawValue
    }

    /// The format of a token string, or `nil` if it is not one.
    public static func format(of string: String) -> TokenFormat? {
        let utf8 = string.utf8
        if string.hasPrefix(opaquePrefix) {
            let body = utf8.dropFirst(opaquePrefix.utf8.count)
            guard body.count == opaqueBodyLength, body.allSatisfy(isBase64URL) else { return nil }
            return .opaque
        }
        guard (12...19).contains(utf8.count), utf8.allSatisfy(isDigit), !Luhn.isValid(digits: utf8) else {
            return nil
        }
        return .numeric
    }

    /// The token's format.
    public var format: TokenFormat { Self.format(of: rawValue) ?? .opaque }

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        rawValue = try container.decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (48...57).contains(byte) }

    private static func isBase64URL(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 45 || byte == 95
    }
}
