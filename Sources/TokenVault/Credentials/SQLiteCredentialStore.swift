import Audit
import CardTokens
import Foundation
import GRDB
import SQLiteSupport

/// ``CredentialStore`` on SQLite (GRDB): the `credentials` table of `vault.db`, whose audit log
/// takes each change's record in the same transaction.
struct SQLiteCredentialStore: CredentialStore {
    private let pool: DatabasePool
    /// Gives the row MAC in force in each transaction (it follows root-key rotations made by
    /// other processes).
    private let keyRing: KeyRing
    private let audit: SQLiteAuditLog

    init(database: VaultDatabase, keyRing: KeyRing, audit: SQLiteAuditLog) {
        self.pool = database.pool
        self.keyRing = keyRing
        self.audit = audit
    }

    func insert(
        audit event: AuditEvent, _ makeRow: @Sendable (RowMAC) throws -> CredentialRow
    ) async throws -> CredentialRow {
        try await pool.write { [audit, keyRing] db in
            let row = try makeRow(keyRing.currentRowMAC(db))
            try row.insert(in: db)
            try audit.append([event], in: db)
            return row
        }
    }

    func rows() async throws -> [CredentialRow] {
        try pool.readInPlace { db in
            try Row.fetchAll(db, sql: "SELECT * FROM credentials ORDER BY created_at_ms, id").map(
                CredentialRow.init(row:))
        }
    }

    func snapshot() async throws -> CredentialSnapshot {
        try pool.readInPlace { [keyRing] db in
            CredentialSnapshot(
                rows: try CredentialRow.all(in: db), revokedInLog: try Self.revokedInLog(db),
                rowMAC: try keyRing.currentRowMAC(db))
        }
    }

    func snapshot(of id: String) async throws -> CredentialSnapshot {
        try pool.readInPlace { [keyRing] db in
            let rowMAC = try keyRing.currentRowMAC(db)
            guard let row = try CredentialRow.fetch(id: id, in: db) else {
                return CredentialSnapshot(rows: [], revokedInLog: [], rowMAC: rowMAC)
            }
            return CredentialSnapshot(rows: [row], revokedInLog: try Self.revokedInLog(db), rowMAC: rowMAC)
        }
    }

    func revoke(
        id: String, audit event: AuditEvent, _ revoked: @Sendable (CredentialRow?, RowMAC) throws -> CredentialRow
    ) async throws {
        _ = try await change(id: id, revoked) { [audit] row, db in
            try db.execute(
                sql: "UPDATE credentials SET revoked_at_ms = ?, mac = ? WHERE id = ?",
                arguments: [row.revokedAtMs, row.mac.map { Data($0) }, id])
            try audit.append([event], in: db)
        }
    }

    func replaceHash(
        id: String, _ rehashed: @Sendable (CredentialRow?, RowMAC) throws -> CredentialRow?
    ) async throws -> CredentialRow? {
        try await change(id: id, rehashed) { row, db in
            try db.execute(
                sql: "UPDATE credentials SET secret_hash = ?, hash_version = ?, mac = ? WHERE id = ?",
                arguments: [Data(row.secretHash), row.hashVersion, row.mac.map { Data($0) }, id])
        }
    }

    /// Read, check and write in one write transaction: the row `change` judges is the row
    /// `write` replaces, under the same row key.
    private func change(
        id: String, _ change: @Sendable (CredentialRow?, RowMAC) throws -> CredentialRow?,
        write: @Sendable (CredentialRow, Database) throws -> Void
    ) async throws -> CredentialRow? {
        try await pool.write { [keyRing] db in
            let rowMAC = try keyRing.currentRowMAC(db)
            guard let changed = try change(CredentialRow.fetch(id: id, in: db), rowMAC) else { return nil }
            try write(changed, db)
            return changed
        }
    }

    /// Ids of the credentials the audit log records as revoked.
    private static func revokedInLog(_ db: Database) throws -> Set<String> {
        let prefix = "credential:"
        return Set(
            try SQLiteAuditLog.revokedObjects(db).filter { $0.hasPrefix(prefix) }.map {
                String($0.dropFirst(prefix.count))
            })
    }
}

extension CredentialRow {
    /// Decodes a row without trusting it: a value of an unexpected type reads as empty (and then
    /// fails the MAC) rather than stopping the process.
    init(row: Row) {
        func text(_ column: String) -> String { String.fromDatabaseValue(row[column] as DatabaseValue) ?? "" }
        func blob(_ column: String) -> [UInt8]? {
            guard case .blob(let data) = (row[column] as DatabaseValue?)?.storage else { return nil }
            return [UInt8](data)
        }
        func integer(_ column: String) -> Int64? { Int64.fromDatabaseValue(row[column] as DatabaseValue) }
        id = text("id")
        name = text("name")
        scopes = text("scopes")
        purposes = text("purposes")
        secretHash = blob("secret_hash") ?? []
        createdAtMs = integer("created_at_ms") ?? 0
        revokedAtMs = integer("revoked_at_ms")
        // Absent before migration `vault.tenants` (the `vault.v2` backfill runs before it).
        tenant = row.hasColumn("tenant") ? text("tenant") : Principal.defaultTenant
        mac = row.hasColumn("mac") ? blob("mac") : nil
        // Absent before migration `vault.root-versions`: every hash was under root version 0.
        hashVersion = row.hasColumn("hash_version") ? integer("hash_version").flatMap(UInt32.init(exactly:)) ?? 0 : 0
    }

    /// Every row, in no particular order.
    static func all(in db: Database) throws -> [CredentialRow] {
        try Row.fetchAll(db, sql: "SELECT * FROM credentials").map(CredentialRow.init(row:))
    }

    /// The row of `id`, or `nil`.
    static func fetch(id: String, in db: Database) throws -> CredentialRow? {
        try Row.fetchOne(db, sql: "SELECT * FROM credentials WHERE id = ?", arguments: [id]).map(
            CredentialRow.init(row:))
    }

    /// Inserts the row (with its MAC).
    func insert(in db: Database) throws {
        try db.execute(
            sql: """
                INSERT INTO credentials (id, name, scopes, purposes, secret_hash, created_at_ms, revoked_at_ms, mac,
                    tenant, hash_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                id, name, scopes, purposes, Data(secretHash), createdAtMs, revokedAtMs, mac.map { Data($0) },
                tenant, hashVersion,
            ])
    }
}
