public import Foundation
import SQLiteSupport
public import VaultCrypto

/// The MAC chain over audit records.
///
/// `mac(n) = BLAKE2b-256(key: auditKey, message: mac(n-1) ‖ canonical(record n))`, with
/// `mac(0)` = 32 zero bytes. Each record thereby commits to every record before it: an edited,
/// deleted, inserted or reordered record breaks every later MAC. `docs/CRYPTO.md` gives the
/// canonical encoding.
public struct AuditChain: Sendable {
    /// Reads the version a segment-start record names, e.g. `root_version=2 previous=…` gives 2.
    public static func segmentVersion(detail: String?) -> UInt32? {
        guard let detail, detail.hasPrefix("root_version="),
            let end = detail.firstIndex(of: " "),
            let version = UInt32(detail[detail.index(detail.startIndex, offsetBy: 13)..<end])
        else { return nil }
        return version
    }

    /// The MAC that precedes the first record.
    public static let genesis = [UInt8](repeating: 0, count: 32)

    private let key: SecretBytes

    public init(key: SecretBytes) {
        self.key = key
    }

    /// The MAC of `event` at `sequence`, following `previous`.
    public func mac(sequence: Int64, event: AuditEvent, previous: [UInt8]) -> [UInt8] {
        var message = previous
        message.append(contentsOf: Self.canonicalBytes(sequence: sequence, event: event))
        return KeyedHash.hash(message, key: key)
    }

    /// The MAC that seals the log's head (its last sequence and record MAC), so a head can be
    /// neither forged nor rewound to an earlier record without the audit key:
    /// `BLAKE2b-256(key: auditKey, message: "audit-head" ‖ u64 BE sequence ‖ mac)`.
    public func headMAC(sequence: Int64, mac: [UInt8]) -> [UInt8] {
        var message = Array("audit-head".utf8)
        withUnsafeBytes(of: UInt64(bitPattern: sequence).bigEndian) { message.append(contentsOf: $0) }
        message.append(contentsOf: mac)
        return KeyedHash.hash(message, key: key)
    }

    /// The genesis commitment: binds the log's first record to the key ring it was created with,
    /// `BLAKE2b-256(key: auditKey, message: "audit-genesis" ‖ u64 BE key-ring creation time in ms)`.
    public func genesisCommitment(keyRingCreatedAtMs: Int64) -> [UInt8] {
        var message = Array("audit-genesis".utf8)
        withUnsafeBytes(of: UInt64(bitPattern: keyRingCreatedAtMs).bigEndian) { message.append(contentsOf: $0) }
        return KeyedHash.hash(message, key: key)
    }

    /// The segment commitment: the closing word of the segment under this key, naming the root
    /// version whose key MACs the records after `sequence`,
    /// `BLAKE2b-256(key: auditKey, message: "audit-segment" ‖ u32 BE version ‖ u64 BE sequence ‖ mac)`
    /// where `sequence` and `mac` are those of the segment's last record (docs/CRYPTO.md §11).
    public func segmentCommitment(version: UInt32, sequence: Int64, mac: [UInt8]) -> [UInt8] {
        var message = Array("audit-segment".utf8)
        withUnsafeBytes(of: version.bigEndian) { message.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt64(bitPattern: sequence).bigEndian) { message.append(contentsOf: $0) }
        message.append(contentsOf: mac)
        return KeyedHash.hash(message, key: key)
    }

    /// The type of the record that starts a new segment (a root-key rotation).
    public static let segmentStartType = "keys.rotate_root"

    /// The `detail` of the record that starts the segment of root version `version`:
    /// `root_version=<version> previous=<hex of this (the old) key's segment commitment>`.
    public func segmentDetail(version: UInt32, sequence: Int64, mac: [UInt8]) -> String {
        "root_version=\(version) previous="
            + Hex.encode(segmentCommitment(version: version, sequence: sequence, mac: mac))
    }

    /// What the genesis record's `detail` begins with.
    public static let genesisDetailPrefix = "genesis="

    /// The `detail` of the genesis record: `genesis=` and the commitment in lower-case hex.
    public func genesisDetail(keyRingCreatedAtMs: Int64) -> String {
        Self.genesisDetailPrefix + Hex.encode(genesisCommitment(keyRingCreatedAtMs: keyRingCreatedAtMs))
    }

    /// Length-prefixed fields, so no two different records encode alike:
    /// `u64 sequence ‖ i64 time (ms since 1970) ‖ fields` where each field is `u32 length ‖ UTF-8`
    /// and absent optionals are length 0xFFFFFFFF.
    public static func canonicalBytes(sequence: Int64, event: AuditEvent) -> [UInt8] {
        var bytes = [UInt8]()
        func append(_ value: UInt64) {
            withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
        }
        func append(_ string: String?) {
            guard let string else {
                withUnsafeBytes(of: UInt32.max.bigEndian) { bytes.append(contentsOf: $0) }
                return
            }
            let utf8 = Array(string.utf8)
            withUnsafeBytes(of: UInt32(utf8.count).bigEndian) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: utf8)
        }
        append(UInt64(bitPattern: sequence))
        append(UInt64(bitPattern: Self.milliseconds(event.time)))
        append(event.actor)
        append(event.type)
        append(event.outcome.rawValue)
        append(event.origin)
        append(UInt64(event.objects.count))
        event.objects.forEach { append($0) }
        append(event.purpose)
        append(event.reference)
        append(event.detail)
        return bytes
    }

    /// Time is stored and MAC'd at millisecond precision.
    public static func milliseconds(_ date: Date) -> Int64 {
        date.milliseconds
    }
}
