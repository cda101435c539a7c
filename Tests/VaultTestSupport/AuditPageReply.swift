public import Foundation

/// A page of audit records as the API (`GET /v1/audit`) and the CLI (`vault audit list --json`)
/// print it: `{"records": [...], "next_after": n|null}`.
public struct AuditPageReply: Decodable, Sendable {
    public var records: [AuditRecordReply]
    public var nextAfter: Int64?
}

/// One audit record, every field as printed.
public struct AuditRecordReply: Decodable, Sendable, Hashable {
    public var sequence: Int64
    public var time: Date
    public var actor: String
    public var type: String
    public var outcome: String
    public var origin: String
    public var objects: [String]
    public var purpose: String?
    public var reference: String?
    public var detail: String?
}
