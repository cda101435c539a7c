import Foundation
import Testing

@Suite("--help", .timeLimit(.minutes(10)))
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
            arguments: ["keys", "--help"],
            mentions: ["init", "rotate", "rewrap", "status", "retire", "rotate-master", "rotate-root"]),
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

    /// Issue 8, finding 8: the help claimed the old master key "no longer opens anything", which
    /// is false for every copy of vault.db made before the rotation.
    @Test("finding 8: rotate-master's help says what the old key still opens")
    func finding8RotateMasterHelpIsTrue() async throws {
        let result = try await run(
            ["keys", "rotate-master", "--help"], cwd: FileManager.default.temporaryDirectory.path)
        #expect(result.succeeded, "\(result)")
        // The help is wrapped to the terminal: compare with the line breaks taken out.
        let text = result.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(!text.contains("no longer opens anything"), "\(text)")
        for words in [
            "old key still opens every copy of vault.db made before", "rotate-root",
            "Response to a master-key compromise",
        ] {
            #expect(text.contains(words), "the help does not say \(words): \(text)")
        }
    }
}
