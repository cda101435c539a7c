import Foundation
import Testing
import VaultTestSupport

/// The trust boundary is the module graph (DESIGN §2).
///
/// The graph comes from `swift package describe --type json`, run with its own `--scratch-path`
/// in a temporary folder: `swift test` holds the lock on `.build` while tests run, so a nested
/// SwiftPM on the same build folder would wait for it forever. `describe` only loads the root
/// manifest (no dependency checkout or build is needed), so this takes well under a second.
@Suite("Module graph", .timeLimit(.minutes(10)))
struct ModuleGraphTests {
    /// The cardholder-data environment's targets.
    static let cde: Set<String> = [
        "CSodium", "VaultCrypto", "TokenVault", "Detokenization", "Settlement", "Audit", "AcquirerSimulator",
        "CardIssuing",
    ]
    /// Targets outside the CDE (each is checked once it exists); `GroupCommit` is a utility the
    /// CDE and the ledger share, `SQLiteSupport` the SQLite plumbing of every store, and
    /// `HTTPListener` the listener limits of the vault and the acquirer simulator, so they must
    /// reach nothing of the CDE either.
    static let outside = [
        "CardTokens", "GroupCommit", "SQLiteSupport", "HTTPListener", "Ledger", "Wallet", "Issuing",
    ]
    /// The folders whose code may read PAN digits out of `CardInput`.
    static let spiReaders = [
        "TokenVault", "VaultCrypto", "Audit", "Detokenization", "Settlement", "CardIssuing", "VaultServer", "VaultCLI",
        "vault",
    ].map { "Sources/\($0)/" }

    struct Description: Decodable {
        struct Target: Decodable {
            var name: String
            var type: String
            var targetDependencies: [String]?
        }
        var targets: [Target]
    }

    static func describePackage() async throws -> [String: [String]] {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "vault-describe-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let result = try await runProcess(
            "/usr/bin/env", ["swift", "package", "--scratch-path", scratch.path, "describe", "--type", "json"],
            cwd: VaultBinary.repositoryRoot)
        guard result.succeeded else { throw TestFailure("swift package describe failed: \(result)") }
        let description = try JSONCoding.decoder.decode(Description.self, from: Data(result.stdout.utf8))
        return Dictionary(uniqueKeysWithValues: description.targets.map { ($0.name, $0.targetDependencies ?? []) })
    }

    /// Every target `name` reaches through target dependencies, excluding itself.
    static func reachable(from name: String, in graph: [String: [String]]) -> Set<String> {
        var seen = Set<String>()
        var queue = graph[name] ?? []
        while let next = queue.popLast() {
            guard seen.insert(next).inserted else { continue }
            queue += graph[next] ?? []
        }
        return seen
    }

    @Test("targets outside the CDE reach none of it; only VaultCrypto depends on CSodium")
    func dependencies() async throws {
        let graph = try await Self.describePackage()
        #expect(graph["CardTokens"] != nil, "CardTokens is missing from the package description")
        #expect(graph["VaultCrypto"]?.contains("CSodium") == true)
        for name in Self.outside where graph[name] != nil {
            let reached = Self.reachable(from: name, in: graph).intersection(Self.cde)
            #expect(reached.isEmpty, "\(name) reaches \(reached.sorted())")
        }
        let sodiumUsers = graph.filter { $0.value.contains("CSodium") }.keys.sorted()
        #expect(sodiumUsers == ["VaultCrypto"], "targets depending on CSodium: \(sodiumUsers)")
    }

    @Test("the shared test helpers and the tests of code outside the CDE reach none of it")
    func testTargetsOutside() async throws {
        let graph = try await Self.describePackage()
        for name in ["VaultTestSupport", "LedgerTests", "WalletTests", "IssuingTests"] {
            #expect(graph[name] != nil, "\(name) is missing from the package description")
            let reached = Self.reachable(from: name, in: graph).intersection(Self.cde)
            #expect(reached.isEmpty, "\(name) reaches \(reached.sorted())")
        }
    }

    @Test("Detokenization is inside the CDE, on top of TokenVault, and CardTokens does not reach it")
    func detokenizationTarget() async throws {
        let graph = try await Self.describePackage()
        #expect(Self.cde.contains("Detokenization"))
        let dependencies = try #require(graph["Detokenization"], "Detokenization is missing from the package")
        #expect(dependencies.contains("TokenVault"), "Detokenization depends on \(dependencies)")
        #expect(dependencies.contains("Audit"), "Detokenization audits before it reveals: \(dependencies)")
        // The shared vocabulary reaches nothing of the CDE, Detokenization included.
        let fromCardTokens = Self.reachable(from: "CardTokens", in: graph)
        #expect(!fromCardTokens.contains("Detokenization"), "CardTokens reaches \(fromCardTokens.sorted())")
        #expect(fromCardTokens.intersection(Self.cde).isEmpty, "CardTokens reaches \(fromCardTokens.sorted())")
        // The vault's core never depends on the detokenize layer above it.
        for name in ["CSodium", "VaultCrypto", "Audit", "TokenVault", "CardTokens"] {
            #expect(!Self.reachable(from: name, in: graph).contains("Detokenization"), "\(name) reaches Detokenization")
        }
    }

    @Test("CardIssuing is inside the CDE, on top of TokenVault, and the wallet side does not reach it")
    func cardIssuingTarget() async throws {
        let graph = try await Self.describePackage()
        let dependencies = try #require(graph["CardIssuing"], "CardIssuing is missing from the package")
        #expect(dependencies.contains("TokenVault"), "CardIssuing depends on \(dependencies)")
        for name in ["Ledger", "Wallet", "Issuing", "CardTokens"] {
            #expect(graph[name] != nil, "\(name) is missing from the package description")
            #expect(!Self.reachable(from: name, in: graph).contains("CardIssuing"), "\(name) reaches CardIssuing")
        }
    }

    /// Every `.swift` file of the checkout outside `.build` and hidden folders, as relative paths.
    static func swiftFiles() throws -> [String] {
        let root = VaultBinary.repositoryRoot
        guard let enumerator = FileManager.default.enumerator(atPath: root) else {
            throw TestFailure("cannot list \(root)")
        }
        var files = [String]()
        while let path = enumerator.nextObject() as? String {
            let name = (path as NSString).lastPathComponent
            if name.hasPrefix(".") {
                enumerator.skipDescendants()
            } else if path.hasSuffix(".swift") {
                files.append(path)
            }
        }
        return files
    }

    @Test("only CDE and wiring code uses the CardholderData SPI; only VaultCrypto imports CSodium")
    func cardholderDataSPI() throws {
        // Spelled in two parts so that this file does not match itself.
        let spi = "@_spi(" + "CardholderData)"
        let files = try Self.swiftFiles()
        #expect(files.contains("Sources/CardTokens/CardInput.swift"), "the scan found no sources")
        var offenders = [String]()
        var sodiumImports = [String]()
        for path in files {
            let text = try String(contentsOfFile: VaultBinary.repositoryRoot + "/" + path, encoding: .utf8)
            let lines = text.split(separator: "\n")
            if lines.contains(where: { $0.range(of: #"^\s*import\s+CSodium\b"#, options: .regularExpression) != nil }),
                !path.hasPrefix("Sources/VaultCrypto/")
            {
                sodiumImports.append(path)
            }
            guard text.contains(spi), !Self.spiReaders.contains(where: path.hasPrefix) else { continue }
            if path.hasPrefix("Sources/CardTokens/") {
                // CardTokens declares the SPI, so its declarations carry the attribute; it must
                // not import it (that would mean the SPI moved elsewhere).
                offenders += lines.filter { $0.contains(spi) && $0.contains("import ") }.map { "\(path): \($0)" }
            } else {
                offenders.append(path)
            }
        }
        #expect(offenders.isEmpty, "CardholderData SPI used outside the CDE: \(offenders)")
        #expect(sodiumImports.isEmpty, "CSodium imported outside VaultCrypto: \(sodiumImports)")
    }

    /// The CDE modules no file outside the CDE may import (CSodium and the targets above it).
    static let forbiddenImports: Set<String> = cde

    /// The module names `text` imports, in any form Swift accepts: with attributes
    /// (`@testable`, `@_spi(…)`, `@preconcurrency`, `@_exported`, `@_implementationOnly`), an
    /// access level (`public import`, `internal import`, …), a kind (`import struct M.T`), a
    /// submodule (`import M.Sub`), split over lines or after a `;`. Line comments are skipped;
    /// anything else that reads as an import counts, so the scan errs towards finding too much.
    static func importedModules(in text: String) -> Set<String> {
        let code = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            guard let comment = line.range(of: "//") else { return line }
            return line[..<comment.lowerBound]
        }.joined(separator: "\n")
        let pattern =
            #"(?:^|[\s;)])import\s+(?:(?:typealias|struct|class|enum|protocol|let|var|func)\s+)?([A-Za-z_][A-Za-z0-9_]*)"#
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return [] }
        let range = NSRange(code.startIndex..., in: code)
        return Set(
            regex.matches(in: code, range: range).compactMap { match in
                Range(match.range(at: 1), in: code).map { String(code[$0]) }
            })
    }

    @Test(
        "Finding 16: the scanner finds a planted CDE import in every form Swift allows, and ignores comments",
        arguments: [
            "import CSodium", "@testable import VaultCrypto", "@_spi(Reveal) import TokenVault",
            "public import Detokenization", "internal import Audit", "@preconcurrency import AcquirerSimulator",
            "package import CSodium", "@_implementationOnly import VaultCrypto", "@_exported import Audit",
            "import struct TokenVault.Vault", "import Foundation; import CSodium", "@preconcurrency\nimport CSodium",
            "import\n    VaultCrypto", "  fileprivate import Audit.Sub", "@testable @_spi(X) public import TokenVault",
        ])
    func finding16ScannerFindsPlantedImport(source: String) {
        let text = "import Foundation\n" + source + "\n\nstruct S {}\n"
        #expect(!Self.importedModules(in: text).isDisjoint(with: Self.forbiddenImports), "missed: \(source)")
    }

    @Test("Finding 16: the scanner does not report comments, identifiers or allowed modules")
    func finding16ScannerIgnoresOthers() {
        let text = """
            import Foundation
            @preconcurrency import GRDB
            public import CardTokens // import CSodium would be wrong here
            // import VaultCrypto
            let importedAudit = 1
            func reimport(TokenVault: Int) {}
            """
        #expect(Self.importedModules(in: text) == ["Foundation", "GRDB", "CardTokens"])
    }

    @Test("Finding 16: no source file of a target outside the CDE imports a CDE module")
    func finding16NoCDEImportOutside() throws {
        let files = try Self.swiftFiles()
        var scanned = [String: Int]()
        var offenders = [String]()
        for target in Self.outside {
            let folder = "Sources/\(target)/"
            for path in files where path.hasPrefix(folder) {
                scanned[target, default: 0] += 1
                let text = try String(contentsOfFile: VaultBinary.repositoryRoot + "/" + path, encoding: .utf8)
                let forbidden = Self.importedModules(in: text).intersection(Self.forbiddenImports)
                if !forbidden.isEmpty { offenders.append("\(path): \(forbidden.sorted())") }
            }
        }
        for target in Self.outside {
            #expect(scanned[target, default: 0] > 0, "the scan found no sources of \(target)")
        }
        #expect(offenders.isEmpty, "CDE modules imported outside the CDE: \(offenders)")
    }

    @Test("only Detokenization imports TokenVault's Detokenization SPI (the one way to plaintext)")
    func detokenizationSPI() throws {
        // Spelled in two parts so that this file does not match itself.
        let spi = "@_spi(" + "Detokenization)"
        let files = try Self.swiftFiles()
        var importers = [String]()
        var declarers = [String]()
        for path in files {
            let text = try String(contentsOfFile: VaultBinary.repositoryRoot + "/" + path, encoding: .utf8)
            for line in text.split(separator: "\n") where line.contains(spi) {
                if line.range(of: #"\bimport\s"#, options: .regularExpression) != nil {
                    importers.append("\(path): \(line.trimmingCharacters(in: .whitespaces))")
                } else {
                    declarers.append(path)
                }
            }
        }
        // TokenVault declares the SPI (its reveal function carries the attribute) …
        #expect(
            declarers.contains("Sources/TokenVault/TokenVault+Reveal.swift"),
            "the scan found no SPI declaration in TokenVault: \(declarers)")
        let strayDeclarations = declarers.filter { !$0.hasPrefix("Sources/TokenVault/") }
        #expect(
            strayDeclarations.isEmpty, "the Detokenization SPI is declared outside TokenVault: \(strayDeclarations)")
        // … and only the Detokenization target imports it: not the server, the CLI, CardTokens or a test.
        #expect(
            importers.contains { $0.hasPrefix("Sources/Detokenization/") },
            "the scan found no import of the SPI in Detokenization: \(importers)")
        let offenders = importers.filter { !$0.hasPrefix("Sources/Detokenization/") }
        #expect(offenders.isEmpty, "the Detokenization SPI is imported outside Detokenization: \(offenders)")
    }
}
