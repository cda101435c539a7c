import CardTokens
public import Foundation

/// One thing that happened, as the audit log records it (PCI DSS 10.2.2: who, what, when,
/// outcome, origin, affected object). Never holds a PAN, a CVV or a secret.
public struct AuditEvent: Sendable, Hashable, Codable {
    /// Whether the action was carried out.
    public enum Outcome: String, Sendable, Codable {
        case success
        case denied
        case failure
    }

    /// Who acted: a credential id, or `admin:cli` for the command line.
    public var actor: String
    /// What happened, e.g. `keys.rotate`, `credential.create`.
    public var type: String
    public var time: Date
    public var outcome: Outcome
    /// Where the request came from: a remote address, or `cli`.
    public var origin: String
    /// The affected tokens or object (e.g. `data_key:3`).
    public var objects: [String]
    public var purpose: String?
    public var reference: String?
    /// Extra non-sensitive detail (e.g. a count).
    public var detail: String?

    public init(
        actor: String, type: String, time: Date = Date(), outcome: Outcome, origin: String,
        objects: [String] = [], purpose: String? = nil, reference: String? = nil, detail: String? = nil
    ) {
        self.actor = actor
        self.type = type
        self.time = time
        self.outcome = outcome
        self.origin = origin
        self.objects = objects
        self.purpose = purpose
        self.reference = reference
        self.detail = detail
    }
}

extension AuditEvent {
    /// What stands in the audit log for a field that looked like it held a card number.
    public static let redacted = "[redacted: card number]"

    /// The event with every field that looks like it holds a card number replaced by
    /// ``redacted`` (issue 8, finding 5): the log is durable and widely read, and some of its
    /// text comes from callers (a presented key id, a reference). Tokens among the objects are
    /// left as they are: a numeric token is Luhn-invalid by construction but may hold a
    /// Luhn-valid run, and it is no card number. Every field gets the audit rule
    /// (``CardNumberDetector/containsLuhnValidRun(_:)``: any Luhn-valid window of 12 to 19
    /// digits, whatever its prefix or the digits around it), except the peer address, which the
    /// network stack writes and whose IPv6 digit groups that rule would often take for one.
    public func redactingCardNumbers() -> AuditEvent {
        func clean(_ text: String) -> String {
            CardNumberDetector.containsLuhnValidRun(text) ? Self.redacted : text
        }
        var event = self
        event.actor = clean(actor)
        event.type = clean(type)
        event.origin = CardNumberDetector.containsCardNumber(origin) ? Self.redacted : origin
        event.objects = objects.map { (try? Token(validating: $0)) != nil ? $0 : clean($0) }
        event.purpose = purpose.map(clean)
        event.reference = reference.map(clean)
        event.detail = detail.map(clean)
        return event
    }
}

/// An event as stored: its place in the chain and its MAC.
public struct AuditRecord: Sendable, Hashable {
    /// Position in the log, from 1, without gaps.
    public var sequence: Int64
    public var event: AuditEvent
    /// Keyed BLAKE2b over the previous record's MAC and this record's canonical bytes.
    public var mac: [UInt8]

    public init(sequence: Int64, event: AuditEvent, mac: [UInt8]) {
        self.sequence = sequence
        self.event = event
        self.mac = mac
    }
}
