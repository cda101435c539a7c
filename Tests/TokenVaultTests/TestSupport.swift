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
        root = try makeTemporaryDirectory("token-vault-tests")
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
