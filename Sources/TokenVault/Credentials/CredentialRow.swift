import CardTokens
import Foundation
import SQLiteSupport

/// A `credentials` row exactly as stored, and the one place that says which of its columns the
/// row MAC covers (docs/CRYPTO.md §10): scopes, purposes, revocation and secret hash cannot be
/// changed without the key.
struct CredentialRow: Sendable, Hashable {
    static let table = "credentials"

    var id: String
    var name: String
    /// Space-separated, as stored.
    var scopes: String
    /// Space-separated detokenize grants `name:pan` / `name:masked`, as stored.
    var purposes: String
    var secretHash: [UInt8]
    var createdAtMs: Int64
    var revokedAtMs: Int64?
    /// The tenant its tokens and wallets belong to.
    var tenant: String
    /// The root-key version whose credential-hash key made `secretHash` (not MAC'd: a wrong
    /// version only makes the hash fail to match).
    var hashVersion: UInt32 = 0
    var mac: [UInt8]?

    /// The fields the row MAC covers, in order; field 1 is the primary key.
    ///
    /// To cover a new column: add it as the last field here (never reorder or remove one), read
    /// and write it in ``init(row:)`` and ``insert(in:)`` (SQLiteCredentialStore.swift) and in
    /// ``credential``, extend the encoding in docs/CRYPTO.md §10, and give existing rows their new
    /// MACs in the migration that adds the column (the `vault.v2` backfill shows how; it needs the
    /// row MAC key).
    var macFields: [RowMAC.Field] {
        [
            .text(id),
            .text(name),
            .text(scopes),
            .text(purposes),
            .blob(secretHash),
            .integer(createdAtMs),
            .optional(revokedAtMs),
            .text(tenant),
        ]
    }

    init(
        id: String, name: String, scopes: String, purposes: String, secretHash: [UInt8], createdAtMs: Int64,
        revokedAtMs: Int64?, tenant: String, mac: [UInt8]? = nil
    ) {
        self.id = id
        self.name = name
        self.scopes = scopes
        self.purposes = purposes
        self.secretHash = secretHash
        self.createdAtMs = createdAtMs
        self.revokedAtMs = revokedAtMs
        self.tenant = tenant
        self.mac = mac
    }

    /// Whether the row is as the vault wrote it.
    func verifies(with rowMAC: RowMAC) -> Bool {
        rowMAC.verify(mac, table: Self.table, fields: macFields)
    }

    /// This row with its MAC computed.
    func sealed(with rowMAC: RowMAC) -> CredentialRow {
        var row = self
        row.mac = rowMAC.mac(table: Self.table, fields: macFields)
        return row
    }

    /// The credential the row describes.
    var credential: Credential {
        // Grants are `name:cvv` (full PANs and issued cards' CVVs) / `name:pan` / `name:masked`;
        // anything else grants masked only.
        let grants = purposes.split(separator: " ").map { $0.split(separator: ":", maxSplits: 1) }
        func granted(_ levels: Set<Substring>) -> [String] {
            grants.filter { $0.count == 2 && levels.contains($0[1]) }.map { String($0[0]) }
        }
        return Credential(
            id: id, name: name, scopes: scopes.split(separator: " ").map { Scope(rawValue: String($0)) },
            purposes: grants.map { String($0[0]) }, panPurposes: granted(["pan", "cvv"]),
            cvvPurposes: granted(["cvv"]), tenant: tenant,
            createdAt: Date(milliseconds: createdAtMs), revokedAt: revokedAtMs.map(Date.init(milliseconds:)))
    }
}
