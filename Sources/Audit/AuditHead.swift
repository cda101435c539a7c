import Foundation

/// The head of the audit log: how many records it has and the MAC of the last one, sealed with
/// a keyed MAC (``AuditChain/headMAC(sequence:mac:)``).
///
/// The head is kept twice: in `audit_head` inside the database, written in the transaction that
/// appends, and in a file of its own (`audit.head` in the data folder by default), written right
/// after each commit. Deleting the newest records then needs the audit key and both copies;
/// `verify` compares the log with each.
public struct AuditHead: Sendable, Hashable {
    public var sequence: Int64
    public var mac: [UInt8]
    public var headMAC: [UInt8]

    public init(sequence: Int64, mac: [UInt8], headMAC: [UInt8]) {
        self.sequence = sequence
        self.mac = mac
        self.headMAC = headMAC
    }

    /// File layout: `"VAH1" ‖ u64 BE sequence ‖ mac (32) ‖ head MAC (32)`, 76 bytes.
    static let fileMagic = Array("VAH1".utf8)
    static let fileByteCount = 4 + 8 + 32 + 32

    var fileBytes: [UInt8] {
        var bytes = Self.fileMagic
        withUnsafeBytes(of: UInt64(bitPattern: sequence).bigEndian) { bytes.append(contentsOf: $0) }
        return bytes + mac + headMAC
    }

    init?(fileBytes bytes: [UInt8]) {
        guard bytes.count == Self.fileByteCount, Array(bytes[0..<4]) == Self.fileMagic else { return nil }
        sequence = Int64(bitPattern: bytes[4..<12].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        mac = Array(bytes[12..<44])
        headMAC = Array(bytes[44..<76])
    }

    /// Reads the head file; `nil` if there is none.
    static func read(path: String) throws -> AuditHead?? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return .some(AuditHead(fileBytes: [UInt8](data)))
    }

    /// Replaces the head file atomically (temporary file, fsync, rename).
    func write(path: String) throws {
        // A name of its own: the server and a CLI command may write the head at the same time.
        let temporary = path + ".\(UUID().uuidString).tmp"
        let data = Data(fileBytes)
        guard FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600])
        else {
            throw CocoaError(.fileWriteUnknown)
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: temporary))
        try handle.write(contentsOf: data)
        try handle.synchronize()
        try handle.close()
        if rename(temporary, path) != 0 { throw CocoaError(.fileWriteUnknown) }
    }
}
