import AcquirerSimulator
import Foundation
import Ledger
import Logging
import SQLiteSupport
import Testing
import TokenVault

/// Every database the project opens, opened as the project opens it, with a write so that its
/// `-wal` exists: the file, its `-wal` and `-shm` are 0600 and its folder 0700.
@Suite("The modes of every database file")
struct ProjectDatabaseModeTests {
    @Test("vault.db, vault.db-wal and vault.db-shm are owner-only")
    func vaultDatabase() async throws {
        try await withTemporaryFolder { root in
            let database = try VaultDatabase.open(directory: root, create: true)
            try database.migrate()
            try expectOwnerOnly(database.path)
            #expect(database.path == root + "/" + VaultDatabase.fileName)
        }
    }

    @Test("wallet.db, wallet.db-wal and wallet.db-shm are owner-only")
    func walletDatabase() async throws {
        try await withTemporaryFolder { root in
            let ledger = try SQLiteLedger(directory: root)
            _ = try await ledger.createAccount(id: "a", currency: try Currency("EUR"))
            try expectOwnerOnly(root + "/" + SQLiteLedger.fileName)
        }
    }

    @Test("acquirer.db, acquirer.db-wal and acquirer.db-shm are owner-only")
    func acquirerDatabase() async throws {
        try await withTemporaryFolder { root in
            let simulator = try AcquirerSimulator.open(stateDirectory: root, logger: Logger(label: "test"))
            // Opening it ran its migration: a write, so the WAL exists.
            try expectOwnerOnly(simulator.databasePath)
            #expect(try await simulator.records().isEmpty)
        }
    }
}
