import Audit
import CardTokens
import Foundation
import GRDB
import InMemoryLogging
import Logging
import SQLiteSupport
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

/// Issue 8, finding 4: a writer of `vault.db` without the key could escalate a credential, revive
/// a revoked one, or make a rotated-out data key active again. Each edit below is made with raw
/// SQL on a second connection while the vault is open, then the reload path of a running server
/// (`refreshKeys`, `credentials.reload`, as `VaultMaintenanceService` calls them) runs: the edit
/// must be refused, not obeyed.
@Suite("Finding 4: credential and data-key rows are bound to the key")
struct RowIntegrityTests {
    /// Runs `sql` on a connection of its own, as another process writing `vault.db` would.
    static func rawEdit(_ sandbox: Sandbox, _ sql: String, _ arguments: StatementArguments = []) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(30)
        let queue = try DatabaseQueue(path: sandbox.databasePath, configuration: configuration)
        try queue.write { db in try db.execute(sql: sql, arguments: arguments) }
        try queue.close()
    }

    /// The first column of the first row of `sql`, read on a connection of its own.
    static func rawCount(_ sandbox: Sandbox, _ sql: String) throws -> Int {
        let queue = try DatabaseQueue(path: sandbox.databasePath)
        defer { try? queue.close() }
        return try queue.read { db in try Int.fetchOne(db, sql: sql) ?? -1 }
    }

    /// The state and MAC of data key `version` as stored now (a genuine row, to replay later).
    static func genuineDataKeyRow(_ vault: Vault, version: Int) async throws -> Row {
        let row: Row? = try await vault.database.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT state, mac FROM data_keys WHERE version = ?", arguments: [version])
        }
        return try #require(row)
    }

    /// Takes `vault.db` back to before row MACs: the columns, the marker table and the
    /// migration record gone.
    static let stripRowMACs = """
        ALTER TABLE data_keys DROP COLUMN mac;
        ALTER TABLE credentials DROP COLUMN mac;
        DROP TABLE vault_meta;
        DELETE FROM grdb_migrations WHERE identifier = 'vault.v2';
        """

    /// What a running server does every second.
    static func serverReload(_ vault: Vault) async throws {
        try await vault.refreshKeys()
        try await vault.credentials.reload()
    }

    static func errorLogs(_ handler: InMemoryLogHandler) -> [String] {
        handler.entries.filter { $0.level == .error }.map(TestLog.rendered)
    }

    // MARK: - Credentials

    @Test("finding 4: scopes and purposes edited in the database do not escalate a credential")
    func finding4EscalatedScopesAreRefused() async throws {
        let (logger, logs) = TestLog.capturing(level: .info)
        try await withVault(logger: logger) { vault, sandbox in
            let (reader, secret) = try await vault.credentials.create(
                name: "reader", scopes: [.tokensRead], purposes: [])
            #expect(await vault.credentials.authenticate(secret: secret)?.id == reader.id)

            try Self.rawEdit(
                sandbox,
                "UPDATE credentials SET scopes = 'detokenize tokens:read', purposes = 'settlement' WHERE id = ?",
                [reader.id])
            try await Self.serverReload(vault)
            #expect(await vault.credentials.authenticate(secret: secret) == nil)
            // Another process that never saw the row before refuses it too (the cache-miss path).
            let other = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            #expect(await other.credentials.authenticate(secret: secret) == nil)

            let refusals = Self.errorLogs(logs).filter { $0.contains("credential row refused") }
            #expect(refusals.count == 1, "logged once, not on every reload: \(refusals)")
            #expect(refusals.first?.contains("credential=\(reader.id)") == true)
            #expect(refusals.allSatisfy { !$0.contains(secret) && !$0.contains("detokenize") })
        }
    }

    @Test("finding 4: a revoked credential un-revoked in the database stays revoked")
    func finding4RevivedRevokedCredentialIsRefused() async throws {
        try await withVault { vault, sandbox in
            let (credential, secret) = try await vault.credentials.create(
                name: "settlement", scopes: [.detokenize], purposes: ["settlement"])
            try await vault.credentials.revoke(id: credential.id)
            let revokedRow = try Self.row(sandbox, credential.id)

            try Self.rawEdit(sandbox, "UPDATE credentials SET revoked_at_ms = NULL WHERE id = ?", [credential.id])
            try await Self.serverReload(vault)
            #expect(await vault.credentials.authenticate(secret: secret) == nil)
            let other = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            #expect(await other.credentials.authenticate(secret: secret) == nil)

            // The genuine revoked row put back verifies again, and is still revoked.
            try Self.rawEdit(
                sandbox, "UPDATE credentials SET revoked_at_ms = ?, mac = ? WHERE id = ?",
                [revokedRow.revokedAtMs, revokedRow.mac.map { Data($0) }, credential.id])
            try await Self.serverReload(vault)
            #expect(await vault.credentials.authenticate(secret: secret) == nil)
            #expect(try await vault.credentials.list().first?.revokedAt != nil)
        }
    }

    @Test("finding 4: a credential's genuine pre-revocation row put back stays revoked, even after a restart")
    func finding4ReplayedPreRevocationRowIsRefused() async throws {
        try await withVault { vault, sandbox in
            let (credential, secret) = try await vault.credentials.create(
                name: "settlement", scopes: [.detokenize], purposes: ["settlement"])
            let before = try Self.row(sandbox, credential.id)
            #expect(before.revokedAtMs == nil)
            try await vault.credentials.revoke(id: credential.id)

            // The row as it was before the revocation: its MAC is genuine.
            try Self.rawEdit(
                sandbox, "UPDATE credentials SET revoked_at_ms = NULL, mac = ? WHERE id = ?",
                [before.mac.map { Data($0) }, credential.id])
            try await Self.serverReload(vault)
            #expect(await vault.credentials.authenticate(secret: secret) == nil)
            // A restarted server has no memory of it; the audit log's `credential.revoke` record does.
            let restarted = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            #expect(await restarted.credentials.authenticate(secret: secret) == nil)
            try await restarted.credentials.reload()
            #expect(await restarted.credentials.authenticate(secret: secret) == nil)
        }
    }

    @Test("finding 4: a row's MAC moved onto another credential's row is refused")
    func finding4MovedMACIsRefused() async throws {
        try await withVault { vault, sandbox in
            let (reader, readerSecret) = try await vault.credentials.create(
                name: "reader", scopes: [.tokensRead], purposes: [])
            let (detokenizer, _) = try await vault.credentials.create(
                name: "settlement", scopes: [.detokenize], purposes: ["settlement"])
            // Everything of the detokenize row, MAC included, copied onto the reader's row (whose
            // secret the attacker knows); only the id and secret hash stay the reader's.
            try Self.rawEdit(
                sandbox,
                """
                UPDATE credentials SET (name, scopes, purposes, created_at_ms, mac) =
                    (SELECT name, scopes, purposes, created_at_ms, mac FROM credentials WHERE id = ?)
                WHERE id = ?
                """, [detokenizer.id, reader.id])
            try await Self.serverReload(vault)
            #expect(await vault.credentials.authenticate(secret: readerSecret) == nil)
            // The secret hash is covered too: the reader's hash on the detokenize row is refused.
            try Self.rawEdit(
                sandbox,
                "UPDATE credentials SET secret_hash = (SELECT secret_hash FROM credentials WHERE id = ?) WHERE id = ?",
                [reader.id, detokenizer.id])
            let other = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            #expect(await other.credentials.authenticate(secret: readerSecret) == nil)
        }
    }

    static func row(_ sandbox: Sandbox, _ id: String) throws -> CredentialRow {
        let queue = try DatabaseQueue(path: sandbox.databasePath)
        defer { try? queue.close() }
        let row: Row? = try queue.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM credentials WHERE id = ?", arguments: [id])
        }
        return CredentialRow(row: try #require(row))
    }

    // MARK: - Data keys

    @Test("finding 4: a rotated-out data key made active again in the database is not used")
    func finding4ReactivatedOldKeyIsRefused() async throws {
        let (logger, logs) = TestLog.capturing(level: .info)
        try await withVault(logger: logger) { vault, sandbox in
            #expect(try await vault.keys.rotate() == 2)
            try Self.rawEdit(
                sandbox,
                """
                UPDATE data_keys SET state = 'decrypt_only' WHERE version = 2;
                UPDATE data_keys SET state = 'active' WHERE version = 1;
                """)
            try await Self.serverReload(vault)
            #expect(vault.keyRing.active.version == 2)
            #expect(vault.keyRing.rows.map(\.state) == [.decryptOnly, .active])
            // Nothing is ever sealed under v1 again (the store's own check fails closed).
            _ = try? await tokenize(.visa, in: vault.tokens)
            #expect(try DB.count(vault, "SELECT count(*) FROM cards WHERE key_version = 1") == 0)
            let refusals = Self.errorLogs(logs).filter { $0.contains("data key row refused") }
            #expect(refusals.count == 2, "\(refusals)")  // v1 and v2, once each
            // A fresh open refuses the ring outright.
            let reopened = await #expect(throws: VaultError.self) {
                _ = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            }
            #expect(reopened?.code == .recordCorrupt)
        }
    }

    @Test("finding 4: an old data-key row replayed (genuine MAC, earlier state) is not obeyed")
    func finding4ReplayedOldDataKeyRowIsRefused() async throws {
        try await withVault { vault, sandbox in
            // v1 while it was active: a genuine row with a genuine MAC.
            let saved = try await Self.genuineDataKeyRow(vault, version: 1)
            #expect(try await vault.keys.rotate() == 2)
            try Self.rawEdit(
                sandbox,
                """
                UPDATE data_keys SET state = 'decrypt_only' WHERE version = 2;
                UPDATE data_keys SET state = ?, mac = ? WHERE version = 1;
                """, [saved["state"] as String, saved["mac"] as Data])
            try await Self.serverReload(vault)
            #expect(vault.keyRing.active.version == 2)
            // Even alone (v2 left as it is) the replayed row may not make two active keys or
            // move v1 back: its state only moves forward.
            try Self.rawEdit(sandbox, "DELETE FROM data_keys WHERE version = 2")
            try await Self.serverReload(vault)
            #expect(vault.keyRing.active.version == 2)
            #expect(vault.keyRing.key(version: 2) != nil)
        }
    }

    @Test("finding 4: a key ring rolled back whole (newer version deleted, old active row put back) does not open")
    func finding4RolledBackKeyRingDoesNotOpen() async throws {
        try await withVault { vault, sandbox in
            let saved = try await Self.genuineDataKeyRow(vault, version: 1)
            #expect(try await vault.keys.rotate() == 2)
            _ = try await tokenize(.visa, in: vault.tokens)
            // Every remaining row genuine, v1 active again: only the records know better.
            try Self.rawEdit(
                sandbox,
                """
                DELETE FROM data_keys WHERE version = 2;
                UPDATE data_keys SET state = ?, mac = ? WHERE version = 1;
                """, [saved["state"] as String, saved["mac"] as Data])
            let refused = await #expect(throws: VaultError.self) {
                _ = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            }
            #expect(refused?.code == .recordCorrupt)
            #expect(refused?.message.contains("rolled back") == true)
        }
    }

    @Test("finding 4: the active version must be the newest non-retired one")
    func finding4ActiveMustBeNewest() throws {
        let master = SecretBytes(randomCount: 32)
        let root = SecretBytes(randomCount: 32)
        let rowMAC = RowMAC(key: try KeyDerivation.deriveSubkey(id: 1, context: "ROWMAC__", from: root))
        func row(_ version: UInt32, _ state: DataKeyState) -> DataKeyRow {
            var row = DataKeyRow(
                version: version, state: state,
                wrappedKey: WrappedKey.wrap(
                    SecretBytes(randomCount: 32), label: .dataKey, version: version, master: master),
                createdAt: Date())
            row.mac = rowMAC.mac(of: row)
            return row
        }
        let wrappedRoot = WrappedKey.wrap(root, label: .root, version: 0, master: master)
        // Every row genuinely MAC'd, but v1 active while v2 exists: refused.
        let refused = #expect(throws: VaultError.self) {
            _ = try KeyRing(
                master: master, wrappedRoot: wrappedRoot, dataKeys: [row(1, .active), row(2, .decryptOnly)])
        }
        #expect(refused?.code == .recordCorrupt)
        let ring = try KeyRing(
            master: master, wrappedRoot: wrappedRoot, dataKeys: [row(1, .decryptOnly), row(2, .active)])
        #expect(ring.active.version == 2)
    }

    @Test("finding 4: row MACs stripped from a vault created with them are not recomputed")
    func finding4StrippedMACsAreNotBackfilled() async throws {
        try await withSandbox { sandbox in
            _ = try await Vault.initialize(paths: sandbox.paths, logger: TestLog.quiet())
            try Self.rawEdit(sandbox, Self.stripRowMACs)
            let refused = await #expect(throws: VaultError.self) {
                _ = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            }
            #expect(refused?.code == .recordCorrupt)
        }
    }

    @Test(
        "finding 4 (review): stripping the MACs and hiding, editing or wiping the genesis record gets no forged row signed",
        arguments: [
            "UPDATE audit_log SET sequence = -sequence",
            "UPDATE audit_log SET detail = 'x' WHERE sequence = 1",
            "DELETE FROM audit_log; DELETE FROM audit_head",
            "DELETE FROM audit_log WHERE sequence = 1",
        ])
    func finding4StrippedMACsCannotBeResigned(hideGenesis: String) async throws {
        try await withSandbox { sandbox in
            _ = try await Vault.initialize(paths: sandbox.paths, logger: TestLog.quiet())
            let (credential, secret): (Credential, String)
            do {
                let vault = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
                (credential, secret) = try await vault.credentials.create(
                    name: "frontend", scopes: [.tokenize], purposes: [])
            }
            try Self.rawEdit(
                sandbox,
                """
                \(Self.stripRowMACs)
                \(hideGenesis);
                UPDATE credentials SET scopes = 'detokenize tokenize', purposes = 'settlement:pan' WHERE id = '\(credential.id)';
                """)
            let refused = await #expect(throws: VaultError.self) {
                _ = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            }
            #expect(refused?.code == .recordCorrupt)
            // Nothing was signed: the forged row still has no MAC.
            #expect(
                try Self.rawCount(sandbox, "SELECT count(*) FROM pragma_table_info('credentials') WHERE name = 'mac'")
                    == 0)
            #expect(!secret.isEmpty)
        }
    }

    /// Turns a vault made by this version into one as the previous version left it: no row MACs,
    /// no `vault.v2` migration, and an audit log whose first record has no genesis detail
    /// (re-chained with the audit key, as the old version would have written it).
    static func makeLegacy(_ vault: Vault, _ sandbox: Sandbox) async throws {
        let chain = AuditChain(key: vault.keyRing.auditKey)
        var previous = AuditChain.genesis
        var macs = [(Int64, [UInt8], String?)]()
        for record in try await vault.audit.records() {
            var event = record.event
            if record.sequence == 1 { event.detail = nil }
            previous = chain.mac(sequence: record.sequence, event: event, previous: previous)
            macs.append((record.sequence, previous, event.detail))
        }
        let last = try #require(macs.last)
        let head = StoredHead(
            sequence: last.0, mac: last.1, headMAC: chain.headMAC(sequence: last.0, mac: last.1))
        try Self.rawEdit(
            sandbox,
            """
            \(Self.stripRowMACs)
            ALTER TABLE cards DROP COLUMN tenant;
            ALTER TABLE cards DROP COLUMN created_by;
            ALTER TABLE credentials DROP COLUMN tenant;
            UPDATE credentials SET purposes = replace(replace(purposes, ':pan', ''), ':masked', '');
            DELETE FROM grdb_migrations WHERE identifier = 'vault.tenants';
            """)
        for (sequence, mac, detail) in macs {
            try Self.rawEdit(
                sandbox, "UPDATE audit_log SET detail = ?, mac = ? WHERE sequence = ?", [detail, Data(mac), sequence])
        }
        try Self.rawEdit(
            sandbox, "UPDATE audit_head SET sequence = ?, mac = ?, head_mac = ?",
            [head.sequence, Data(head.mac), Data(head.headMAC)])
        try AuditTamper.setHeadFile(vault, AuditTamper.headFileBytes(head))
    }

    @Test("finding 4: a vault created before row MACs gets them once, when first opened, and is protected after")
    func finding4LegacyVaultIsUpgraded() async throws {
        try await withSandbox { sandbox in
            _ = try await Vault.initialize(paths: sandbox.paths, logger: TestLog.quiet())
            let (secret, token, credentialID, settlement): (String, Token, String, String)
            do {
                let vault = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
                let created = try await vault.credentials.create(name: "reader", scopes: [.tokensRead], purposes: [])
                (secret, credentialID) = (created.secret, created.credential.id)
                settlement = try await vault.credentials.create(
                    name: "settlement", scopes: [.detokenize], purposes: ["settlement:masked", "chargeback:masked"]
                ).secret
                token = try await tokenize(.visa, in: vault.tokens).metadata.token
                _ = try await vault.keys.rotate()
                try await Self.makeLegacy(vault, sandbox)
            }
            let upgraded = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            #expect(upgraded.keyRing.active.version == 2)
            #expect(await upgraded.credentials.authenticate(secret: secret)?.id == credentialID)
            try await upgraded.tokens.verifyRecord(token)
            // Migration vault.tenants: a legacy detokenize key keeps full PANs for its purposes
            // (purposes had no grants), sealed anew; legacy tokens are the default tenant's, and
            // no caller's dedupe reaches them.
            let legacyKey = try #require(await upgraded.credentials.authenticate(secret: settlement))
            #expect(legacyKey.purposeGrants == ["chargeback:pan", "settlement:pan"])
            #expect(legacyKey.tenant == "default")
            #expect(try await upgraded.tokens.metadata(of: token).token == token)
            let again = try await upgraded.tokens.tokenize(TestCard.visa.request(dedupe: true))
            #expect(again.created && again.metadata.token != token)
            // The log predates genesis records: still intact, thanks to the sealed marker.
            let verification = try await upgraded.audit.verify()
            #expect(verification.ok, "\(verification)")
            #expect(try DB.count(upgraded, "SELECT count(*) FROM data_keys WHERE mac IS NULL") == 0)

            // From now on the rows are bound to the key.
            try Self.rawEdit(
                sandbox, "UPDATE credentials SET scopes = 'detokenize' WHERE id = ?", [credentialID])
            try await Self.serverReload(upgraded)
            #expect(await upgraded.credentials.authenticate(secret: secret) == nil)
            // The marker cannot be forged or moved: a wrong MAC brings the genesis check back.
            try Self.rawEdit(sandbox, "UPDATE vault_meta SET mac = randomblob(32)")
            #expect(!(try await upgraded.audit.verify().ok))
            // And a legacy log may not be empty either.
            try AuditGenesisTests.wipe(upgraded)
            #expect(!(try await upgraded.audit.verify().ok))
        }
    }

    // MARK: - The encoding

    @Test("finding 4: row MAC known-answer vectors of docs/CRYPTO.md §17")
    func finding4RowMACKnownAnswers() throws {
        let key = AuditTamperTests.bytes(hex: "e89bd417cca881ec18e32e1ee5eda83d9f2dd5529f46ad34d3c33ebe3da1c47a")
        let rowMAC = RowMAC(key: key.withUnsafeBytes { SecretBytes(copying: $0) })
        let dataKey = DataKeyRow(
            version: 2, state: .active, wrappedKey: (0..<80).map(UInt8.init),
            createdAt: Date(milliseconds: 1_767_225_600_000),
            createdAtMs: 1_767_225_600_000)
        #expect(
            AuditTamperTests.hex(
                RowMAC.message(
                    table: "data_keys",
                    fields: RowMAC.dataKeyFields(
                        version: 2, state: "active", wrappedKey: (0..<80).map(UInt8.init),
                        createdAtMs: 1_767_225_600_000)))
                == "7661756c742d726f7700000009646174615f6b6579730000000400000008000000000000000200000006616374697665"
                + "00000050" + AuditTamperTests.hex((0..<80).map(UInt8.init)) + "000000080000019b76daa800")
        #expect(
            AuditTamperTests.hex(rowMAC.mac(of: dataKey))
                == "eb78a3ceca38ff89e5d54d53e728f64a2ce268a9987d4dcda7a7b7ad24a69d17")
        let credential = CredentialRow(
            id: "k8x2p0q1r7s3t9u4", name: "settlement", scopes: "detokenize",
            purposes: "chargeback:masked settlement:pan", secretHash: (0..<32).map(UInt8.init),
            createdAtMs: 1_767_225_600_123, revokedAtMs: nil, tenant: "default")
        #expect(
            AuditTamperTests.hex(rowMAC.mac(table: CredentialRow.table, fields: credential.macFields))
                == "0fb045c0930d444e1a663f12aedd8a2578137bce5c202df40fa267594a50a126")
        #expect(credential.sealed(with: rowMAC).verifies(with: rowMAC))
        #expect(!credential.verifies(with: rowMAC))
    }
}
