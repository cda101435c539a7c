public import Audit
import Detokenization
public import Testing

/// Checks that `records` is exactly one `denied` detokenize record of `actor` whose detail names
/// the refusal (`refused=<code>`), with this purpose and reference; `origin` and `objects` are
/// checked where given (otherwise the origin must not be empty).
public func expectOneDeniedDetokenize(
    _ records: [AuditRecord], actor: String, code: String, purpose: String? = nil, reference: String? = nil,
    origin: String? = nil, objects: [String]? = nil, sourceLocation: SourceLocation = #_sourceLocation
) {
    guard records.count == 1, let event = records.first?.event else {
        Issue.record(
            "expected one audit record, got \(records.count): \(records.map(\.event.type))",
            sourceLocation: sourceLocation)
        return
    }
    #expect(event.type == Detokenizer.eventType, sourceLocation: sourceLocation)
    #expect(event.outcome == .denied, sourceLocation: sourceLocation)
    #expect(event.actor == actor, sourceLocation: sourceLocation)
    if let origin {
        #expect(event.origin == origin, sourceLocation: sourceLocation)
    } else {
        #expect(!event.origin.isEmpty, sourceLocation: sourceLocation)
    }
    #expect(event.purpose == purpose, sourceLocation: sourceLocation)
    #expect(event.reference == reference, sourceLocation: sourceLocation)
    if let objects {
        #expect(event.objects == objects, sourceLocation: sourceLocation)
    }
    #expect(event.detail?.contains("refused=\(code)") == true, "\(event)", sourceLocation: sourceLocation)
}
