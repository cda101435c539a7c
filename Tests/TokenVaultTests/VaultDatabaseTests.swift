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

@Suite("Vault database")
struct VaultDatabaseTests {
    /// DESIGN §5 and §9: WAL, `synchronous = FULL` on the connection that commits (an acknowledged
    /// write is on disk), `secure_delete` on every connection, foreign keys enforced.
    @Test func connectionSettings() async throws {
        try await withVault { vault, _ in
            let writer = try await vault.database.pool.write { db in
                try Row.fetchOne(
                    db,
                    sql: "SELECT (SELECT synchronous FROM pragma_synchronous) AS synchronous, "
                        + "(SELECT secure_delete FROM pragma_secure_delete) AS secure_delete, "
                        + "(SELECT journal_mode FROM pragma_journal_mode) AS journal_mode, "
                        + "(SELECT foreign_keys FROM pragma_foreign_keys) AS foreign_keys")
            }
            let row = try #require(writer)
            #expect(row["synchronous"] as Int? == 2, "the writer must run with synchronous = FULL (2)")
            #expect(row["secure_delete"] as Int? == 1)
            #expect(row["journal_mode"] as String? == "wal")
            #expect(row["foreign_keys"] as Int? == 1)
            let readerSecureDelete = try await vault.database.pool.read { db in
                try Int.fetchOne(db, sql: "PRAGMA secure_delete")
            }
            #expect(readerSecureDelete == 1)
            // Finding 3: a WAL that restarts is cut back, so stale frames do not linger at its end.
            let journalSizeLimit = try await vault.database.pool.write { db in
                try Int.fetchOne(db, sql: "PRAGMA journal_size_limit")
            }
            #expect(journalSizeLimit == 64 * 1024 * 1024)
        }
    }

    @Test func filesAreOwnerOnly() async throws {
        try await withVault { vault, sandbox in
            _ = try await tokenize(.visa, in: vault.tokens)
            #expect(try Bytes.mode(of: sandbox.paths.dataDirectory) & 0o077 == 0)
            #expect(try Bytes.mode(of: sandbox.databasePath) & 0o077 == 0)
        }
    }
}
