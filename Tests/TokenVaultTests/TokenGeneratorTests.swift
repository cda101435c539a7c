import CardTokens
import Testing

@testable import TokenVault

@Suite struct TokenGeneratorTests {
    /// The vector of docs/CRYPTO.md §17.
    @Test func opaqueTokenKnownAnswer() {
        let random = [UInt8](0..<16)
        let token = random.withUnsafeBytes { TokenGenerator.opaque(milliseconds: 1_767_225_600_000, random: $0) }
        #expect(token.rawValue == "tok_-OhqqeV---31-kF40VR71FcA2-oD2k")
        #expect(Token.format(of: token.rawValue) == .opaque)
    }

    /// Later tokens sort after earlier ones whatever their random part, so index inserts append.
    @Test func opaqueTokensSortByCreationTime() {
        var previous = ""
        for step in 0..<500 {
            let random = [UInt8](repeating: UInt8(255 - step % 256), count: 16)
            let token = random.withUnsafeBytes {
                TokenGenerator.opaque(milliseconds: 1_767_225_600_000 + Int64(step) * 37, random: $0)
            }
            #expect(token.rawValue > previous)
            previous = token.rawValue
        }
    }
}
