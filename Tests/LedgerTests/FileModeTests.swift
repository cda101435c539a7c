import Foundation
import Ledger
import Testing

@Suite("wallet.db file modes")
struct FileModeTests {
    @Test("wallet.db and its WAL are owner-only, also when an older file was group-readable")
    func ownerOnly() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ledger-mode-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        func mode(_ name: String) throws -> Int {
            let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/" + name)
            return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
        }
        do {
            let ledger = try SQLiteLedger(directory: directory)
            _ = try await ledger.createAccount(id: "a", currency: try Currency("EUR"))
            #expect(try mode(SQLiteLedger.fileName) == 0o600)
            #expect(try mode(SQLiteLedger.fileName + "-wal") == 0o600)
        }
        try FileManager.default.setAttributes(
            [.posixPermissions: 0o644], ofItemAtPath: directory + "/" + SQLiteLedger.fileName)
        _ = try SQLiteLedger(directory: directory)
        #expect(try mode(SQLiteLedger.fileName) == 0o600)
    }
}
