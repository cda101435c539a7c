import Audit

/// Credential rows as one read found them, with what is needed to judge them.
struct CredentialSnapshot: Sendable {
    var rows: [CredentialRow]
    /// Ids the audit log records as revoked: a row put back as it was before its revocation
    /// (genuine MAC, no revocation) stays revoked.
    var revokedInLog: Set<String>
    /// The row MAC in force when the rows were read: a row sealed under a root version another
    /// process just added verifies only with that version's key, whatever this process adopts
    /// meanwhile.
    var rowMAC: RowMAC
}

/// Storage of API credentials. One SQLite implementation today (``SQLiteCredentialStore``);
/// the shape fits a PostgreSQL one: every method is one transaction. ``CredentialService`` keeps
/// the logic (hashing, MAC checks, the cache); where a row must be checked and sealed under the
/// row key in force inside the write transaction, it passes that step in as a closure.
///
/// Internal, as ``CredentialRow`` and ``RowMAC`` are: a backend needs the row MAC, which stays
/// inside `TokenVault`.
protocol CredentialStore: Sendable {
    /// Inserts the row `makeRow` builds under the row MAC in force, with its audit event.
    /// - Returns: the row as inserted.
    func insert(
        audit: AuditEvent, _ makeRow: @Sendable (RowMAC) throws -> CredentialRow
    ) async throws -> CredentialRow
    /// Every row, oldest first (by creation time, then id), unchecked.
    func rows() async throws -> [CredentialRow]
    /// Every row, with the revocations in the audit log.
    func snapshot() async throws -> CredentialSnapshot
    /// The row of `id` (none if unknown), with the revocations in the audit log only if it exists:
    /// an unknown id costs one indexed lookup, not a scan of the log.
    func snapshot(of id: String) async throws -> CredentialSnapshot
    /// Hands row `id` (or `nil`) and the row MAC in force to `revoked`, then writes the revocation
    /// and MAC of the row it returns together with `audit`. A throw from `revoked` writes nothing.
    func revoke(
        id: String, audit: AuditEvent, _ revoked: @Sendable (CredentialRow?, RowMAC) throws -> CredentialRow
    ) async throws
    /// Hands row `id` (or `nil`) and the row MAC in force to `rehashed`, then writes the secret
    /// hash, hash version and MAC of the row it returns; `nil` leaves the row as it is.
    /// - Returns: the row as written, or `nil`.
    func replaceHash(
        id: String, _ rehashed: @Sendable (CredentialRow?, RowMAC) throws -> CredentialRow?
    ) async throws -> CredentialRow?
}
