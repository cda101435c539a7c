import Audit
import Synchronization
import Testing
import VaultTestSupport

@testable import TokenVault

/// `CredentialService` through the `CredentialStore` seam: it needs nothing of SQLite, a change
/// and its audit record commit together, and a failed commit changes nothing.
@Suite("Credential store")
struct CredentialStoreTests {
    @Test func revocationCommitsWithItsAuditRecord() async throws {
        try await withVault { vault, _ in
            let service = CredentialService(
                store: SQLiteCredentialStore(database: vault.database, keyRing: vault.keyRing, audit: vault.audit),
                keyRing: vault.keyRing, logger: TestLog.quiet())
            let (credential, secret) = try await service.create(name: "batch", scopes: [.tokenize], purposes: [])
            #expect(await service.authenticate(secret: secret)?.id == credential.id)

            try await service.revoke(id: credential.id)

            let revocations = try await vault.audit.records().map(\.event).filter { $0.type == "credential.revoke" }
            #expect(revocations.map(\.objects) == [["credential:\(credential.id)"]])
            // Written to vault.db, not only to this service's cache: the vault's own service sees it.
            #expect(try await vault.credentials.list().first?.revokedAt != nil)
            try await vault.credentials.reload()
            #expect(await vault.credentials.authenticate(secret: secret) == nil)
        }
    }

    @Test func aRevocationThatFailsToCommitChangesNothing() async throws {
        try await withVault { vault, _ in
            let sqlite = SQLiteCredentialStore(database: vault.database, keyRing: vault.keyRing, audit: vault.audit)
            let service = CredentialService(
                store: CommitFailingStore(base: sqlite), keyRing: vault.keyRing, logger: TestLog.quiet())
            let (credential, secret) = try await service.create(name: "batch", scopes: [.tokenize], purposes: [])

            await #expect(throws: CommitFailingStore.CommitFailed.self) { try await service.revoke(id: credential.id) }

            #expect(await service.authenticate(secret: secret)?.id == credential.id)
            #expect(try await service.list().map(\.revokedAt) == [nil])
            let types = try await vault.audit.records().map(\.event.type)
            #expect(types.contains("credential.create") && !types.contains("credential.revoke"))
            try await vault.credentials.reload()
            #expect(await vault.credentials.authenticate(secret: secret)?.id == credential.id)
        }
    }

    @Test func aSecondBackendKeepsRevocationsAndRefusesEditedRows() async throws {
        try await withVault { vault, _ in
            let store = MemoryCredentialStore(rowMAC: vault.keyRing.root.rowMAC)
            let service = CredentialService(store: store, keyRing: vault.keyRing, logger: TestLog.quiet())
            let (revoked, revokedSecret) = try await service.create(name: "old", scopes: [.tokenize], purposes: [])
            let (edited, editedSecret) = try await service.create(name: "new", scopes: [.tokenize], purposes: [])
            let beforeRevocation = try #require(store.row(revoked.id))
            try await service.revoke(id: revoked.id)
            #expect(store.auditEvents.map(\.type) == ["credential.create", "credential.create", "credential.revoke"])
            #expect(store.row(revoked.id)?.revokedAtMs != nil)

            // The revoked row put back as it was (genuine MAC): the audit log keeps it revoked.
            store.put(beforeRevocation)
            // A row edited without the key: it no longer verifies.
            var widened = try #require(store.row(edited.id))
            widened.scopes = "tokenize detokenize"
            store.put(widened)

            let fresh = CredentialService(store: store, keyRing: vault.keyRing, logger: TestLog.quiet())
            #expect(await fresh.authenticate(secret: revokedSecret) == nil)
            #expect(await fresh.authenticate(secret: editedSecret) == nil)
            try await fresh.reload()
            #expect(await fresh.authenticate(secret: revokedSecret) == nil)
            #expect(await fresh.authenticate(secret: editedSecret) == nil)
        }
    }
}

/// Forwards to `base`, but fails each revocation inside its transaction, after the service's
/// check has passed (as a failed commit would).
private struct CommitFailingStore: CredentialStore {
    struct CommitFailed: Error {}
    let base: any CredentialStore

    func insert(audit: AuditEvent, _ makeRow: @Sendable (RowMAC) throws -> CredentialRow) async throws -> CredentialRow
    {
        try await base.insert(audit: audit, makeRow)
    }
    func rows() async throws -> [CredentialRow] { try await base.rows() }
    func snapshot() async throws -> CredentialSnapshot { try await base.snapshot() }
    func snapshot(of id: String) async throws -> CredentialSnapshot { try await base.snapshot(of: id) }
    func revoke(
        id: String, audit: AuditEvent, _ revoked: @Sendable (CredentialRow?, RowMAC) throws -> CredentialRow
    ) async throws {
        try await base.revoke(id: id, audit: audit) { row, rowMAC in
            _ = try revoked(row, rowMAC)
            throw CommitFailed()
        }
    }
    func replaceHash(
        id: String, _ rehashed: @Sendable (CredentialRow?, RowMAC) throws -> CredentialRow?
    ) async throws -> CredentialRow? {
        try await base.replaceHash(id: id, rehashed)
    }
}

/// A second backend, in memory, with its own audit trail: the service must need nothing of SQLite.
private final class MemoryCredentialStore: CredentialStore {
    private struct State {
        var rows: [String: CredentialRow] = [:]
        var audit: [AuditEvent] = []
    }

    private let state = Mutex(State())
    private let rowMAC: RowMAC

    init(rowMAC: RowMAC) { self.rowMAC = rowMAC }

    var auditEvents: [AuditEvent] { state.withLock { $0.audit } }
    func row(_ id: String) -> CredentialRow? { state.withLock { $0.rows[id] } }
    /// Writes `row` as it is, as a writer of the database without the key could.
    func put(_ row: CredentialRow) { state.withLock { $0.rows[row.id] = row } }

    func insert(audit: AuditEvent, _ makeRow: @Sendable (RowMAC) throws -> CredentialRow) async throws -> CredentialRow
    {
        try state.withLock { state in
            let row = try makeRow(rowMAC)
            state.rows[row.id] = row
            state.audit.append(audit)
            return row
        }
    }

    func rows() async throws -> [CredentialRow] {
        state.withLock { $0.rows.values.sorted { ($0.createdAtMs, $0.id) < ($1.createdAtMs, $1.id) } }
    }

    func snapshot() async throws -> CredentialSnapshot {
        state.withLock {
            CredentialSnapshot(rows: Array($0.rows.values), revokedInLog: revokedInLog($0), rowMAC: rowMAC)
        }
    }

    func snapshot(of id: String) async throws -> CredentialSnapshot {
        state.withLock { state in
            CredentialSnapshot(
                rows: state.rows[id].map { [$0] } ?? [], revokedInLog: revokedInLog(state), rowMAC: rowMAC)
        }
    }

    func revoke(
        id: String, audit: AuditEvent, _ revoked: @Sendable (CredentialRow?, RowMAC) throws -> CredentialRow
    ) async throws {
        try state.withLock { state in
            state.rows[id] = try revoked(state.rows[id], rowMAC)
            state.audit.append(audit)
        }
    }

    func replaceHash(
        id: String, _ rehashed: @Sendable (CredentialRow?, RowMAC) throws -> CredentialRow?
    ) async throws -> CredentialRow? {
        try state.withLock { state in
            guard let row = try rehashed(state.rows[id], rowMAC) else { return nil }
            state.rows[id] = row
            return row
        }
    }

    private func revokedInLog(_ state: State) -> Set<String> {
        Set(
            state.audit.filter { $0.type == "credential.revoke" }.flatMap(\.objects).map {
                String($0.dropFirst("credential:".count))
            })
    }
}
