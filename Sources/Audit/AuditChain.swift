public import Foundation
public import VaultCrypto

/// The MAC chain over audit records.
///
/// `mac(n) = BLAKE2b-256(key: auditKey, message: mac(n-1) ‖ canonical(record n))`, with
/// `mac(0)` = 32 zero bytes. Each record thereby commits to every record before it: an edited,
/// deleted, inserted or reordered record breaks every later MAC. `docs/CRYPTO.md` gives the
/// canonical encoding.
public struct AuditChain: Sendable {
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

    /// What the genesis record's `detail` begins with.
    public static let genesisDetailPrefix = "genesis="

    /// The `detail` of the genesis record: `genesis=` and the commitment in lower-case hex.
    public func genesisDetail(keyRingCreatedAtMs: Int64) -> String {
        Self.genesisDetailPrefix
            + genesisCommitment(keyRingCreatedAtMs: keyRingCreatedAtMs).map { byte in
                let digits = Array("0123456789abcdef")
                return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
            }.joined()
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
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }
}
