import Foundation
import Testing

@Suite("--help")
struct HelpTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var arguments: [String]
        /// Strings the help must contain.
        var mentions: [String]

        var testDescription: String { (["vault"] + arguments).joined(separator: " ") }
    }

    static let cases: [Case] = [
        Case(arguments: ["--help"], mentions: ["--data-dir", "--keys-dir", "serve", "keys", "credentials"]),
        Case(
            arguments: ["keys", "--help"], mentions: ["init", "rotate", "rewrap", "status", "retire", "rotate-master"]),
        Case(
            arguments: ["keys", "rewrap", "--help"], mentions: ["--data-dir", "--keys-dir", "--batch-size", "--json"]),
        Case(
            arguments: ["credentials", "create", "--help"],
            mentions: ["--data-dir", "--keys-dir", "--name", "--scope", "--json"]),
        Case(
            arguments: ["serve", "--help"],
            mentions: [
                "--data-dir", "--keys-dir", "--public-port", "--host", "--idle-timeout", "--request-timeout",
                "--max-connections",
            ]),
        Case(
            arguments: ["acquirer-sim", "--help"],
            mentions: ["--idle-timeout", "--request-timeout", "--max-connections"]),
    ]

    @Test("exits 0 and documents the options", arguments: cases)
    func help(_ help: Case) async throws {
        let result = try await run(help.arguments, cwd: FileManager.default.temporaryDirectory.path)
        #expect(result.succeeded, "\(result)")
        for word in help.mentions {
            #expect(result.stdout.contains(word), "the help does not mention \(word): \(result)")
        }
    }
}
