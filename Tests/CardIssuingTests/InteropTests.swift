import CDETestSupport
import CardTokens
import Foundation
import Testing
import VaultTestSupport

@testable import CardIssuing
@testable import TokenVault

/// Runs Tests/Interop/decrypt_record.py, the independent implementation written from CRYPTO.md.
enum DecryptRecord {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Interop/decrypt_record.py").path

    /// Whether `python3` has PyNaCl (Tests/Interop/run_interop.sh installs it).
    static let available = (try? python(["-c", "import nacl"]).status) == 0

    static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try python([script] + arguments)
    }

    private static func python(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// The independent implementation derives the CVV of a card a fresh vault issued from the
/// vault's files alone.
@Suite("Card issuing: interop with decrypt_record.py", .enabled(if: DecryptRecord.available))
struct InteropTests {
    @Test("the CVV known-answer vectors check out in Python")
    func vectors() throws {
        let result = try DecryptRecord.run(["--check-cvv-vectors"])
        #expect(result.status == 0 && result.output.contains(#""ok": true"#), "\(result.output)")
    }

    @Test("Python derives the CVV a fresh vault issued, after a root rotation, and checks the key's row MAC")
    func freshVault() async throws {
        try await withFreshVault("issue-interop") { fresh in
            let issuer = try fresh.issuer(length: 19)
            let card = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
            _ = try await fresh.vault.keys.rotateRoot()
            let cvv = try await issuer.cvv(of: card.token)
            let database = fresh.paths.dataDirectory + "/vault.db"
            let decrypt = try DecryptRecord.run([
                "--master-key", fresh.paths.masterKeyPath, "--db", database, "--token",
                card.token.rawValue, "--expect-issued-cvv", cvv,
            ])
            #expect(decrypt.status == 0, "\(decrypt.output)")
            #expect(decrypt.output.contains(#""issued_cvv_ok": true"#) && decrypt.output.contains(#""cvk_version": 1"#))
            #expect(!decrypt.output.contains(#""cvv":"#), "the tool never prints a CVV")
            let wrong = String(format: "%03d", (Int(cvv)! + 1) % 1000)
            let refused = try DecryptRecord.run([
                "--master-key", fresh.paths.masterKeyPath, "--db", database, "--token",
                card.token.rawValue, "--expect-issued-cvv", wrong,
            ])
            #expect(refused.status == 1 && refused.output.contains(#""issued_cvv_ok": false"#))
            let rows = try DecryptRecord.run([
                "--master-key", fresh.paths.masterKeyPath, "--db", database, "--verify-rows",
            ])
            #expect(rows.status == 0 && rows.output.contains(#""card_verification_keys": 1"#), "\(rows.output)")
        }
    }
}
