import Foundation
import GRDB
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

/// What an attacker holding `master.key` and a copy of the data folder can open: every key
/// derivable from the master key and the `vault.db*` files, tried on every byte range of those
/// files that could be a record envelope (docs/CRYPTO.md §5, §7). Test code: it copies opened
/// plaintext into ordinary strings to compare them.
struct FileScan {
    /// A wrapped key found anywhere in the files that opens under the master key.
    struct WrappedKeyFound {
        var file: String
        var label: String
        var version: UInt32
    }

    /// An envelope found anywhere in the files that opens under one of the keys.
    struct EnvelopeFound: CustomStringConvertible {
        var file: String
        var offset: Int
        var kind: UInt8
        var token: String
        var data: String
        var description: String { "kind \(kind) of \(token) at \(file)+\(offset)" }
    }

    var files: [String: [UInt8]]
    var wrappedKeys: [WrappedKeyFound] = []
    var envelopes: [EnvelopeFound] = []

    /// Reads every `vault.db*` file of `sandbox` and opens what it can.
    init(_ sandbox: Sandbox) throws {
        files = try Bytes.files(in: sandbox.paths.dataDirectory).filter { $0.key.hasPrefix(VaultDatabase.fileName) }
        let master = try MasterKeyFile.load(path: sandbox.paths.masterKeyPath)
        var keys = [SecretBytes]()
        func add(_ key: SecretBytes) {
            if !keys.contains(where: { $0 == key }) { keys.append(key) }
        }
        // The keys of the database as it now stands, read as an independent reader would.
        var configuration = Configuration()
        configuration.readonly = true
        let queue = try DatabaseQueue(path: sandbox.databasePath, configuration: configuration)
        let (root, dataKeys) = try queue.read { db in
            (
                try Data.fetchOne(db, sql: "SELECT wrapped_key FROM system_keys WHERE name = 'root'"),
                try Row.fetchAll(db, sql: "SELECT version, wrapped_key FROM data_keys WHERE wrapped_key IS NOT NULL")
            )
        }
        try queue.close()
        if let root { add(try WrappedKey.unwrap([UInt8](root), label: .root, version: 0, master: master)) }
        for row in dataKeys {
            add(
                try WrappedKey.unwrap(
                    [UInt8](row["wrapped_key"] as Data), label: .dataKey, version: row["version"], master: master))
        }
        // Every wrapped key anywhere in the files, stale copies included: 80 bytes at any offset.
        let scratch = SecretBytes(zeroedCount: WrappedKey.plaintextByteCount)
        let wrappedCount = SecretBox.boxByteCount(plaintextCount: WrappedKey.plaintextByteCount)
        for (name, bytes) in files.sorted(by: { $0.key < $1.key }) where bytes.count >= wrappedCount {
            bytes.withUnsafeBytes { raw in
                for offset in 0...(raw.count - wrappedCount) {
                    let box = UnsafeRawBufferPointer(rebasing: raw[offset..<offset + wrappedCount])
                    let opened = scratch.withUnsafeMutableBytes { out in
                        (try? SecretBox.open(box, key: master, into: out)) != nil
                    }
                    guard opened else { continue }
                    let (label, version, key) = scratch.withUnsafeBytes { plain in
                        (
                            String(decoding: plain[0..<4], as: UTF8.self),
                            plain[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) },
                            SecretBytes(copying: UnsafeRawBufferPointer(rebasing: plain[8...]))
                        )
                    }
                    wrappedKeys.append(WrappedKeyFound(file: name, label: label, version: version))
                    add(key)
                }
            }
        }
        // The root's subkeys too: no key derivable from the two files is left out.
        if let root {
            let rootKey = try WrappedKey.unwrap([UInt8](root), label: .root, version: 0, master: master)
            for subkey in KeyRing.Subkey.allCases {
                add(try KeyDerivation.deriveSubkey(id: 1, context: subkey.rawValue, from: rootKey))
            }
        }
        envelopes = Self.openEnvelopes(in: files, keys: keys)
    }

    /// Plaintext lengths a record can have: `3 + t + 1 + d (+ 3 for a card)`, token 12–19 or 34
    /// bytes, data 12–19 digits (PAN) or 3–4 (CVV).
    static let cardLengths = Set(([34] + Array(12...19)).flatMap { t in (12...19).map { 7 + t + $0 } })
    static let cvvLengths = Set(([34] + Array(12...19)).flatMap { t in (3...4).map { 4 + t + $0 } })

    private static func openEnvelopes(in files: [String: [UInt8]], keys: [SecretBytes]) -> [EnvelopeFound] {
        var found = [EnvelopeFound]()
        let scratch = SecretBytes(zeroedCount: 128)
        let allLengths = cardLengths.union(cvvLengths).sorted()
        let cvvOnly = cvvLengths.sorted()
        for (name, bytes) in files.sorted(by: { $0.key < $1.key }) {
            bytes.withUnsafeBytes { raw in
                for offset in 0..<raw.count {
                    // Card envelopes (and CVVs as they were sealed before): 0x01 ‖ u32 version.
                    // CVV envelopes: 0x02 ‖ u64 epoch, whose first bit is 0.
                    let header: Int
                    let lengths: [Int]
                    switch raw[offset] {
                    case RecordEnvelope.formatByte where offset + 5 <= raw.count:
                        let version = raw[offset + 1..<offset + 5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                        guard (1...64).contains(version) else { continue }
                        (header, lengths) = (5, allLengths)
                    case RecordEnvelope.cvvFormatByte where offset + 9 <= raw.count && raw[offset + 1] < 0x80:
                        (header, lengths) = (9, cvvOnly)
                    default:
                        continue
                    }
                    for length in lengths {
                        let end = offset + header + SecretBox.overhead + length
                        guard end <= raw.count else { break }
                        let box = UnsafeRawBufferPointer(rebasing: raw[offset + header..<end])
                        for key in keys {
                            let plain: [UInt8]? = scratch.withUnsafeMutableBytes { out in
                                let target = UnsafeMutableRawBufferPointer(rebasing: out[0..<length])
                                guard (try? SecretBox.open(box, key: key, into: target)) != nil else { return nil }
                                return Array(target)
                            }
                            guard let plain,
                                let record = try? Records.parse(
                                    plain,
                                    kind: plain.count >= 2 && plain[1] == RecordEnvelope.Kind.cvv.rawValue
                                        ? .cvv : .card)
                            else { continue }
                            found.append(
                                EnvelopeFound(
                                    file: name, offset: offset, kind: record.kind, token: record.token,
                                    data: record.data))
                        }
                    }
                }
            }
        }
        return found
    }
}
