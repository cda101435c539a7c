/// How a token looks.
public enum TokenFormat: String, Sendable, Codable, CaseIterable {
    /// `tok_` followed by 30 URL-safe characters: a creation timestamp (so new tokens sort
    /// after old ones, keeping index inserts local) and 128 random bits; unrelated to the PAN.
    case opaque
    /// Same length as the PAN, the first six and last four digits kept, random digits between,
    /// and always failing the Luhn check so that it can never be taken for a card number.
    case numeric
}
