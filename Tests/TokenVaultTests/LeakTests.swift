import Audit
import CardTokens
import Foundation
import GRDB
import InMemoryLogging
import Logging
import Synchronization
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

/// PAN and CVV never reach a log, an error message or the database in the clear (DESIGN §10).
@Suite("No leaks")
struct LeakTests {
    /// The strings that would give a PAN away: the PAN itself, grouped by four, and its hidden
    /// middle digits joined to either end (BIN and last four alone are allowed to be shown).
    static func revealing(_ pan: String) -> [String] {
        var forms = [pan]
        forms.append(
            stride(from: 0, to: pan.count, by: 4).map { offset in
                String(pan.dropFirst(offset).prefix(4))
            }.joined(separator: " "))
        if pan.count >= 14 { forms.append(String(pan.dropFirst(6))) }
        if pan.count >= 15 { forms.append(String(pan.dropLast(4))) }
        return forms
    }

    @Test func noPANOrCVVInLogsOrFiles() async throws {
        var generator = SeededGenerator()
        let seed = generator.seed
        let (logger, handler) = TestLog.capturing(level: .trace)
        let cards = (0..<300).map { _ in PANGenerator.card(withCVV: true, using: &generator) }
        var tokens = [String]()
        try await withSandbox { sandbox in
            do {
                _ = try await Vault.initialize(paths: sandbox.paths, logger: logger)
                let vault = try await Vault.open(paths: sandbox.paths, logger: logger)
                // One by one, in a batch, deduplicated: every tokenize path.
                for card in cards.prefix(50) {
                    tokens.append(try await tokenize(card, in: vault.tokens).metadata.token.rawValue)
                }
                let batch = try await vault.tokens.tokenize(batch: cards.dropFirst(50).map { try $0.request() })
                tokens += try batch.map { try $0.get().metadata.token.rawValue }
                for card in cards.prefix(20) { _ = try await tokenize(card, in: vault.tokens, dedupe: true) }
                // Key life cycle, CVV purge, delete, and a failing record check.
                _ = try await vault.keys.rotate()
                _ = try await vault.keys.rewrap(batchSize: 64)
                try await vault.keys.retire(version: 1)
                _ = try await vault.keys.status()
                _ = try await vault.tokens.purgeExpiredCVVs()
                try await vault.tokens.delete(Token(unchecked: tokens[0]))
                try DB.execute(
                    vault,
                    "UPDATE cards SET ciphertext = (SELECT ciphertext FROM cards WHERE token = ?) "
                        + "WHERE token = ?", [tokens[2], tokens[1]])
                do {
                    try await vault.tokens.verifyRecord(Token(unchecked: tokens[1]))
                    Issue.record("a swapped ciphertext verified")
                } catch {
                    for form in Self.revealing(cards[1].pan) + Self.revealing(cards[2].pan) {
                        #expect(!String(describing: error).contains(form))
                        #expect(!String(reflecting: error).contains(form))
                    }
                }
                try DB.checkpoint(vault)
            }

            // (a) Logs: no PAN in any form; no CVV as a value.
            let entries = handler.entries
            #expect(!entries.isEmpty)
            let logText = entries.map(TestLog.rendered).joined(separator: "\n")
            for (index, card) in cards.enumerated() {
                for form in Self.revealing(card.pan) {
                    #expect(!logText.contains(form), "seed \(seed), card \(index): PAN in the log")
                }
                let cvv = try #require(card.cvv)
                for pattern in ["cvv=\(cvv)", "cvv: \(cvv)", "\"cvv\":\"\(cvv)\"", "cvv \(cvv)"] {
                    #expect(!logText.lowercased().contains(pattern), "seed \(seed), card \(index): CVV in the log")
                }
            }
            for entry in entries {
                for (key, value) in entry.metadata {
                    let text = "\(value)"
                    #expect(!["pan", "cvv", "cvc", "card_number"].contains(key.lowercased()), "\(key)")
                    // (A CVV is three digits, like many counts: only the PAN is checked as a whole value.)
                    #expect(!cards.contains { $0.pan == text }, "\(key)")
                }
            }

            // (b) Files: vault.db and whatever WAL or shared-memory file is left, byte by byte.
            let files = try Bytes.files(in: sandbox.paths.dataDirectory)
            #expect(files.keys.contains(VaultDatabase.fileName))
            for (name, bytes) in files {
                // A PAN in the clear would be part of a run of digits (or of digits and spaces),
                // and a CVV in the clear next to its token (same row or same plaintext).
                let digitRuns = Bytes.runs(in: bytes, minimumLength: 8, where: Bytes.isDigit).map(\.run)
                let spacedRuns = Bytes.runs(in: bytes, minimumLength: 14) { Bytes.isDigit($0) || $0 == 32 }
                    .map(\.run).filter { $0.contains(" ") }
                let tokenRuns = Bytes.runs(in: bytes, minimumLength: 26, context: 5, where: Bytes.isBase64URL)
                for (index, card) in cards.enumerated() {
                    // BIN and last four are stored in the clear side by side, as they may be: for
                    // a PAN whose middle repeats its BIN (seed 12248614865278590078, 349790497904405)
                    // that run holds the nine trailing digits.
                    let shown = String(card.pan.prefix(6)) + String(card.pan.suffix(4))
                    for form in Self.revealing(card.pan) {
                        let runs = form.contains(" ") ? spacedRuns : digitRuns
                        #expect(
                            !runs.contains { $0.contains(form) && $0 != shown },
                            "seed \(seed), card \(index): PAN in \(name)")
                    }
                    let cvv = try #require(card.cvv)
                    let token = tokens[index]
                    for found in tokenRuns where found.run.contains(token) {
                        let next = String(decoding: found.after.prefix(cvv.count + 1), as: UTF8.self)
                        let clear =
                            found.run.contains(token + cvv) || found.run.contains(cvv + token)
                            || next.hasSuffix(cvv) || next.hasPrefix(cvv)
                        #expect(!clear, "seed \(seed), card \(index): CVV in \(name)")
                    }
                }
            }
        }
    }

    @Test func noCVVInTheDatabaseColumns() async throws {
        try await withVault { vault, _ in
            var card = TestCard.amex
            card.cvv = "7391"
            let token = try await tokenize(card, in: vault.tokens).metadata.token.rawValue
            for table in ["cards", "cvvs"] {
                for value in try DB.allValues(vault, table: table) {
                    #expect(value != Array("7391".utf8), "CVV stored in the clear in \(table)")
                    #expect(!Bytes.contains(value, card.pan), "PAN stored in the clear in \(table)")
                }
            }
            let sealed = try #require(try DB.ciphertext(vault, table: "cvvs", token: token))
            #expect(!Bytes.contains(sealed, "7391"))
            #expect(!Bytes.contains(sealed, token))
        }
    }

    /// Validation errors and the card input itself never print the number.
    @Test func validationErrorsDoNotEchoThePAN() throws {
        let pan = "4111111111111111"
        let attempts: [(pan: String, month: Int, year: Int, cvv: String?)] = [
            (pan + "x", 12, 2031, nil),
            ("4111 1111 1111 1111 / 12", 12, 2031, nil),
            (pan + pan, 12, 2031, nil),
            ("4111111111111112", 12, 2031, nil),
            (pan, 13, 2031, nil),
            (pan, 12, 2101, nil),
            (pan, 1, 2001, nil),
            (pan, 12, 2031, "12"),
            (pan, 12, 2031, "12a"),
        ]
        for attempt in attempts {
            let error = #expect(throws: CardValidationError.self) {
                _ = try CardInput(pan: attempt.pan, expMonth: attempt.month, expYear: attempt.year, cvv: attempt.cvv)
            }
            let rendered = [
                error.map { String(describing: $0) }, error.map { String(reflecting: $0) }, error?.message,
                error.map { "\($0.code)" },
            ].compactMap { $0 }
            for text in rendered {
                #expect(!text.contains("4111111111111"), "\(text)")
                #expect(!text.contains("1111 1111"), "\(text)")
                if let cvv = attempt.cvv { #expect(!text.contains(cvv), "\(text)") }
            }
        }

        let input = try CardInput(pan: pan, expMonth: 12, expYear: 2031, cvv: "123")
        var dumped = ""
        dump(input, to: &dumped)
        for text in [String(describing: input), String(reflecting: input), "\(input)"] {
            #expect(!text.contains(pan) && !text.contains("111111111"), "\(text)")
            #expect(!text.contains("123"), "\(text)")
        }
        // The mirror shows buffer addresses, never the digits.
        #expect(!dumped.contains(pan) && !dumped.contains("111111111"), "\(dumped)")
        #expect(input.bin == "411111" && input.last4 == "1111" && input.hasCVV && input.panLength == 16)
    }
}
