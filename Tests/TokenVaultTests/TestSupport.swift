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

// Helpers shared by the TokenVault suites. Test code may copy decrypted bytes into ordinary
// arrays to compare them; production code never does.

// MARK: - Sandboxes

/// A temporary folder holding one vault's data folder and key folder; removed by ``remove()``.
final class Sandbox: Sendable {
    let root: String
    let paths: VaultPaths

    init() throws {
        root =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("token-vault-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        paths = VaultPaths(dataDirectory: root + "/data", keysDirectory: root + "/Keys")
    }

    var databasePath: String { paths.dataDirectory + "/" + VaultDatabase.fileName }

    /// A path inside the sandbox, outside the data and key folders.
    func path(_ name: String) -> String { root + "/" + name }

    func remove() {
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// Runs `body` with a fresh sandbox, removed afterwards.
func withSandbox<R>(_ body: (Sandbox) async throws -> R) async throws -> R {
    let sandbox = try Sandbox()
    defer { sandbox.remove() }
    return try await body(sandbox)
}

/// Runs `body` with a freshly initialised and opened vault in its own sandbox.
func withVault<R>(
    cvvTimeToLive: TimeInterval = 3600, logger: Logger = TestLog.quiet(),
    _ body: (Vault, Sandbox) async throws -> R
) async throws -> R {
    try await withSandbox { sandbox in
        _ = try await Vault.initialize(paths: sandbox.paths, logger: logger)
        let vault = try await Vault.open(paths: sandbox.paths, logger: logger, cvvTimeToLive: cvvTimeToLive)
        return try await body(vault, sandbox)
    }
}

// MARK: - Logging

// MARK: - Clock

// MARK: - Card numbers

/// Card data for tests: public test numbers or generated Luhn-valid numbers.
struct TestCard: Sendable, CustomTestStringConvertible {
    var pan: String
    var expMonth: Int
    var expYear: Int
    var cvv: String?
    /// The brand the PAN's prefix belongs to, decided by the test (not by `CardBrand`).
    var expectedBrand: CardBrand

    init(pan: String, expMonth: Int = 12, expYear: Int = 2031, cvv: String? = nil, brand: CardBrand) {
        self.pan = pan
        self.expMonth = expMonth
        self.expYear = expYear
        self.cvv = cvv
        self.expectedBrand = brand
    }

    var testDescription: String { "\(expectedBrand) card, \(pan.count) digits" }

    var bin: String { String(pan.prefix(6)) }
    var last4: String { String(pan.suffix(4)) }

    func input() throws -> CardInput {
        try CardInput(pan: pan, expMonth: expMonth, expYear: expYear, cvv: cvv)
    }

    func request(format: TokenFormat = .opaque, dedupe: Bool = false) throws -> TokenizeRequest {
        TokenizeRequest(card: try input(), format: format, dedupe: dedupe)
    }

    /// Published test numbers of the card networks.
    static let visa = TestCard(pan: "4111111111111111", brand: .visa)
    static let visa2 = TestCard(pan: "4242424242424242", brand: .visa)
    static let mastercard = TestCard(pan: "5555555555554444", brand: .mastercard)
    static let amex = TestCard(pan: "378282246310005", brand: .amex)
    static let discover = TestCard(pan: "6011111111111117", brand: .discover)
}

enum PANGenerator {
    /// IIN prefixes and the brand each belongs to (ranges chosen well inside one network).
    static let prefixes: [(prefix: String, brand: CardBrand)] = [
        ("4", .visa), ("51", .mastercard), ("55", .mastercard), ("2221", .mastercard), ("34", .amex),
        ("37", .amex), ("6011", .discover), ("65", .discover), ("3530", .jcb), ("36", .dinersClub),
        ("621", .unionPay), ("50", .maestro), ("9", .unknown),
    ]

    /// A Luhn-valid PAN of `length` digits under a random known prefix (or `prefix`).
    static func pan<G: RandomNumberGenerator>(
        length: Int, prefix: String? = nil, using generator: inout G
    ) -> (pan: String, brand: CardBrand) {
        let chosen = prefix.map { ($0, CardBrand.unknown) } ?? prefixes.randomElement(using: &generator)!
        let body = chosen.0 + TestLuhn.digits(length - 1 - chosen.0.count, using: &generator)
        var bytes = Array(body.utf8)
        bytes.append(TestLuhn.checkDigit(for: bytes))
        return (String(decoding: bytes, as: UTF8.self), chosen.1)
    }

    /// A card with a generated PAN, a future expiry and, if asked, a CVV of the brand's length.
    static func card<G: RandomNumberGenerator>(
        length: Int? = nil, withCVV: Bool = false, using generator: inout G
    ) -> TestCard {
        let length = length ?? Int.random(in: CardInput.panLengths, using: &generator)
        let (pan, brand) = pan(length: length, using: &generator)
        let cvv = withCVV ? TestLuhn.digits(brand == .amex ? 4 : 3, using: &generator) : nil
        return TestCard(
            pan: pan, expMonth: Int.random(in: 1...12, using: &generator),
            expYear: Int.random(in: 2031...2045, using: &generator), cvv: cvv, brand: brand)
    }
}

// MARK: - Opening records

/// A decrypted record, parsed by the layout of `RecordEnvelope`:
/// `0x01 ‖ kind ‖ u8 token length ‖ token ‖ u8 data length ‖ data ‖ extra`.
struct OpenedRecord: Equatable {
    var kind: UInt8
    var token: String
    var data: String
    /// Card records only.
    var expMonth: Int?
    var expYear: Int?
}

struct LayoutError: Error, CustomStringConvertible {
    var description: String
}

enum Records {
    /// Opens `ciphertext` with the vault's internal `open` and parses the plaintext.
    static func open(
        _ ciphertext: [UInt8], kind: RecordEnvelope.Kind, token: String, keyRing: KeyRing
    ) throws -> OpenedRecord {
        let scratch = SecretBytes(zeroedCount: RecordEnvelope.maximumPlaintextByteCount)
        let count = try TokenVault.open(ciphertext, kind: kind, token: token, keyRing: keyRing, into: scratch)
        let bytes = scratch.withUnsafeBytes { Array($0.prefix(count)) }
        return try parse(bytes, kind: kind)
    }

    static func parse(_ bytes: [UInt8], kind: RecordEnvelope.Kind) throws -> OpenedRecord {
        guard bytes.count >= 4, bytes[0] == RecordEnvelope.formatByte else {
            throw LayoutError(description: "bad format byte or too short")
        }
        guard bytes[1] == kind.rawValue else { throw LayoutError(description: "kind \(bytes[1])") }
        let tokenLength = Int(bytes[2])
        guard bytes.count >= 3 + tokenLength + 1 else { throw LayoutError(description: "token overruns") }
        let token = String(decoding: bytes[3..<3 + tokenLength], as: UTF8.self)
        let dataLength = Int(bytes[3 + tokenLength])
        let dataStart = 4 + tokenLength
        guard bytes.count >= dataStart + dataLength else { throw LayoutError(description: "data overruns") }
        let data = String(decoding: bytes[dataStart..<dataStart + dataLength], as: UTF8.self)
        let extra = Array(bytes[(dataStart + dataLength)...])
        switch kind {
        case .card:
            guard extra.count == 3 else { throw LayoutError(description: "card extra is \(extra.count) bytes") }
            return OpenedRecord(
                kind: bytes[1], token: token, data: data, expMonth: Int(extra[0]),
                expYear: Int(extra[1]) << 8 | Int(extra[2]))
        case .cvv:
            guard extra.isEmpty else { throw LayoutError(description: "cvv extra is \(extra.count) bytes") }
            return OpenedRecord(kind: bytes[1], token: token, data: data, expMonth: nil, expYear: nil)
        }
    }

    /// Opens a CVV envelope with the in-memory epoch key of `tokens` that sealed it (no key in
    /// the key ring opens a CVV).
    static func openCVV(_ ciphertext: [UInt8], token: String, tokens: TokenVault) throws -> OpenedRecord {
        guard
            let key = try TokenVault.cvvEpochKey(
                of: ciphertext, token: Token(unchecked: token), keys: tokens.cvvKeys, now: Date())
        else { throw LayoutError(description: "no epoch key for this CVV") }
        let scratch = SecretBytes(zeroedCount: RecordEnvelope.maximumPlaintextByteCount)
        let count = try ciphertext.withUnsafeBytes { envelope in
            try scratch.withUnsafeMutableBytes { buffer in
                try RecordEnvelope.open(envelope, kind: .cvv, token: token, key: key, into: buffer)
            }
        }
        return try parse(scratch.withUnsafeBytes { Array($0.prefix(count)) }, kind: .cvv)
    }

    /// The key version in an envelope's header.
    static func headerVersion(_ ciphertext: [UInt8]) -> UInt32? {
        guard ciphertext.count >= 5, ciphertext[0] == RecordEnvelope.formatByte else { return nil }
        return ciphertext[1...4].reduce(0) { $0 << 8 | UInt32($1) }
    }
}

// MARK: - Database access

enum DB {
    static func ciphertext(_ vault: Vault, table: String, token: String) throws -> [UInt8]? {
        try vault.database.pool.read { db in
            try Data.fetchOne(db, sql: "SELECT ciphertext FROM \(table) WHERE token = ?", arguments: [token])
        }.map { [UInt8]($0) }
    }

    static func setCiphertext(_ vault: Vault, table: String, token: String, _ bytes: [UInt8]) throws {
        try vault.database.pool.write { db in
            try db.execute(
                sql: "UPDATE \(table) SET ciphertext = ? WHERE token = ?", arguments: [Data(bytes), token])
        }
    }

    static func count(_ vault: Vault, _ sql: String, _ arguments: StatementArguments = []) throws -> Int {
        try vault.database.pool.read { db in try Int.fetchOne(db, sql: sql, arguments: arguments) ?? 0 }
    }

    static func execute(_ vault: Vault, _ sql: String, _ arguments: StatementArguments = []) throws {
        try vault.database.pool.write { db in try db.execute(sql: sql, arguments: arguments) }
    }

    /// Every value of every row of `table`, as text or raw bytes.
    static func allValues(_ vault: Vault, table: String) throws -> [[UInt8]] {
        try vault.database.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM \(table)").flatMap { row in
                row.databaseValues.map { value -> [UInt8] in
                    switch value.storage {
                    case .blob(let data): [UInt8](data)
                    case .string(let string): Array(string.utf8)
                    case .int64(let int): Array(String(int).utf8)
                    case .double(let double): Array(String(double).utf8)
                    case .null: []
                    }
                }
            }
        }
    }

    /// Writes the WAL into the database file and empties it.
    static func checkpoint(_ vault: Vault) throws {
        try vault.database.pool.writeWithoutTransaction { db in
            _ = try db.checkpoint(.truncate)
        }
    }
}

// MARK: - Files and bytes

enum Bytes {
    /// Whether `needle` occurs in `haystack` (a plain scan: for small haystacks).
    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        guard haystack.count >= needle.count else { return false }
        return haystack.withUnsafeBufferPointer { hay in
            needle.withUnsafeBufferPointer { pattern in
                (0...(hay.count - pattern.count)).contains { start in
                    hay[start] == pattern[0] && (1..<pattern.count).allSatisfy { hay[start + $0] == pattern[$0] }
                }
            }
        }
    }

    /// Every maximal run of bytes satisfying `isMember`, at least `minimumLength` long, with the
    /// `context` bytes before and after it: to look for strings in a large file quickly.
    static func runs(
        in bytes: [UInt8], minimumLength: Int, context: Int = 0, where isMember: (UInt8) -> Bool
    ) -> [(before: [UInt8], run: String, after: [UInt8])] {
        var found = [(before: [UInt8], run: String, after: [UInt8])]()
        var start: Int?
        for index in 0...bytes.count {
            let member = index < bytes.count && isMember(bytes[index])
            if member, start == nil { start = index }
            if !member, let first = start {
                if index - first >= minimumLength {
                    found.append(
                        (
                            Array(bytes[max(0, first - context)..<first]),
                            String(decoding: bytes[first..<index], as: UTF8.self),
                            Array(bytes[index..<min(bytes.count, index + context)])
                        ))
                }
                start = nil
            }
        }
        return found
    }

    static func isDigit(_ byte: UInt8) -> Bool { (48...57).contains(byte) }

    static func isBase64URL(_ byte: UInt8) -> Bool {
        isDigit(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 45 || byte == 95
    }

    static func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
        contains(haystack, Array(needle.utf8))
    }

    /// The contents of every regular file in `directory`, by name.
    static func files(in directory: String) throws -> [String: [UInt8]] {
        var files = [String: [UInt8]]()
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            let path = directory + "/" + name
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue
            else { continue }
            files[name] = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        }
        return files
    }

    static func read(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Writes `bytes` to a new file with `mode`.
    static func write(_ bytes: [UInt8], to path: String, mode: Int = 0o600) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: mode])
        else { throw LayoutError(description: "cannot create \(path)") }
        // The umask may have narrowed the mode: set it exactly.
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    static func mode(of path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    static func random(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255) }
    }
}

// MARK: - Errors

extension VaultError.Code {
    /// For `#expect(throws:)` closures.
    func matches(_ error: any Error) -> Bool { (error as? VaultError)?.code == self }
}

/// Tokenizes `card` and returns the result, failing the test if the vault refuses.
func tokenize(
    _ card: TestCard, in tokens: TokenVault, format: TokenFormat = .opaque, dedupe: Bool = false
) async throws -> TokenizeResult {
    try await tokens.tokenize(card.request(format: format, dedupe: dedupe))
}
