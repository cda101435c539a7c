public import Audit
public import CardTokens
import Foundation
public import Logging
import Synchronization
@_spi(Detokenization) public import TokenVault

/// How much of a card a detokenize request reveals.
public enum RevealLevel: String, Sendable, Codable, CaseIterable {
    /// BIN and last four, the rest `*` (the most PCI DSS 3.4.1 allows to display).
    case masked
    /// The full PAN.
    case pan
}

/// A detokenize request as the API receives it.
public struct DetokenizeRequest: Sendable {
    public var tokens: [String]
    public var purpose: String
    public var reference: String
    public var reveal: RevealLevel

    public init(tokens: [String], purpose: String, reference: String, reveal: RevealLevel) {
        self.tokens = tokens
        self.purpose = purpose
        self.reference = reference
        self.reveal = reveal
    }
}

/// One token's result, in request order.
public enum DetokenizeResult: Sendable, Hashable {
    /// `cvv` only for a card this vault issued, revealed in full to its cardholder
    /// (``Detokenizer/cardholderRevealPurpose``).
    case card(token: String, pan: String?, maskedPan: String?, expMonth: Int, expYear: Int, cvv: String?)
    /// `token` is `nil` when the string was not a well-formed token: it is never echoed, since a
    /// caller may have sent a card number there by mistake.
    case error(token: String?, code: String, message: String)
}

/// Who is asking, as the listener saw it.
public struct Caller: Sendable {
    /// The authenticated credential, if any.
    public var credential: Credential?
    /// The id part of a presented but invalid key, for the audit log (never the secret).
    public var presentedID: String?
    /// The peer address.
    public var origin: String

    public init(credential: Credential?, presentedID: String? = nil, origin: String) {
        self.credential = credential
        self.presentedID = presentedID
        self.origin = origin
    }

    /// The actor an audit record names: the credential's id; for an unknown key its presented
    /// id if well-formed and holding at most 11 digits (the vault issues no other: a PAN needs
    /// 12), else `unknown:malformed`.
    public var actor: String {
        if let credential { return credential.id }
        guard let presentedID else { return "anonymous" }
        return CredentialService.isIssuableID(presentedID)
            ? "unknown:\(presentedID)" : "unknown:malformed"
    }
}

/// The only code that returns plaintext (DESIGN §2, §6): checks credential, scope, rate and
/// purpose, writes the audit record durably, and only then decrypts. Every refusal is audited
/// too. If the audit record cannot be written, nothing is revealed.
public final class Detokenizer: Sendable {
    public static let maximumTokens = 1000
    public static let eventType = "detokenize"
    /// The purpose under which a full reveal of a card this vault issued includes its CVV
    /// (derived at that moment), for a key granted it `:cvv`: how a cardholder sees the card to use it.
    public static let cardholderRevealPurpose = CredentialService.cvvPurpose
    private let tokens: TokenVault
    private let audit: any AuditLog
    private let rateLimiter: RateLimiter?
    private let panQuota: DailyQuota?
    private let logger: Logger
    /// Audit records of refusals without a valid key, per peer: a flood of them is coalesced
    /// (the rest counted and reported in the next record written for that peer), so an
    /// unauthenticated client cannot fill the durable log.
    private let unauthenticatedRefusals: RateLimiter
    private let suppressedRefusals = Mutex<[String: (count: Int, actors: Set<String>)]>([:])
    /// How many distinct actors a coalesced summary names.
    static let suppressedActorsListed = 16

    /// - Parameters:
    ///   - rateLimiter: tokens per second per key (a request of n tokens takes n).
    ///   - panQuota: full PANs a key may reveal per UTC day.
    ///   - unauthenticatedRefusals: audit records of refusals without a valid key, per peer
    ///     address (5 per second, bursts of 20, by default).
    public init(
        tokens: TokenVault, audit: any AuditLog, rateLimiter: RateLimiter?, panQuota: DailyQuota? = nil,
        unauthenticatedRefusals: RateLimiter = RateLimiter(rate: 5, burst: 20), logger: Logger
    ) {
        self.tokens = tokens
        self.audit = audit
        self.rateLimiter = rateLimiter
        self.panQuota = panQuota
        self.unauthenticatedRefusals = unauthenticatedRefusals
        self.logger = logger
    }

    /// Records a refusal that happened before a request body was read (no key, wrong scope).
    /// - Parameter type: the audit event type (`detokenize`, or `audit.read` for the audit route).
    public func refuse(
        _ caller: Caller, error: DetokenizationError, purpose: String? = nil, reference: String? = nil,
        tokens: [Token] = [], type: String = eventType
    ) async -> DetokenizationError {
        var detail = "refused=\(error.code)"
        if caller.credential == nil {
            let actor = caller.actor
            guard unauthenticatedRefusals.acquire(caller.origin) == nil else {
                // Counted, and the distinct key ids tried are kept for the summary.
                suppressedRefusals.withLock {
                    var entry = $0[caller.origin] ?? (0, [])
                    entry.count += 1
                    if entry.actors.count < Self.suppressedActorsListed { entry.actors.insert(actor) }
                    $0[caller.origin] = entry
                }
                return error
            }
            if let suppressed = suppressedRefusals.withLock({ $0.removeValue(forKey: caller.origin) }) {
                detail += " suppressed=\(suppressed.count) actors=\(suppressed.actors.sorted().joined(separator: ","))"
            }
        }
        let event = AuditEvent(
            actor: caller.actor, type: type, outcome: .denied, origin: caller.origin,
            objects: tokens.map(\.rawValue), purpose: purpose, reference: reference, detail: detail)
        do {
            try await audit.append(event)
        } catch {
            logger.error("audit append failed for a refused detokenize request")
        }
        return error
    }

    /// Checks that `caller` may detokenize at all (before the body is read).
    public func authorize(_ caller: Caller) async throws(DetokenizationError) -> Credential {
        guard let credential = caller.credential else {
            throw await refuse(
                caller,
                error: .init(
                    .unauthenticated, code: "unauthenticated",
                    message: "missing or invalid API key (Authorization: Bearer <key>)"))
        }
        guard credential.allows(.detokenize) else {
            throw await refuse(
                caller, error: .init(.forbidden, code: "forbidden", message: "this API key lacks scope detokenize"))
        }
        return credential
    }

    /// Detokenizes a request from a caller that ``authorize(_:)`` let through.
    public func detokenize(
        _ request: DetokenizeRequest, credential: Credential, caller: Caller
    ) async throws(DetokenizationError) -> [DetokenizeResult] {
        if let problem = Self.validate(request) {
            throw await refuse(caller, error: problem, purpose: Self.safePurpose(request.purpose))
        }
        let parsed = request.tokens.map { try? Token(validating: $0) }
        let valid = parsed.compactMap { $0 }
        if let refusal = refusal(of: request, credential: credential, tokens: valid) {
            throw await refuse(
                caller, error: refusal, purpose: request.purpose, reference: request.reference, tokens: valid)
        }
        let positions = parsed.indices.filter { parsed[$0] != nil }
        var results = [DetokenizeResult?](repeating: nil, count: parsed.count)
        for (index, token) in parsed.enumerated() where token == nil {
            results[index] = .error(token: nil, code: "invalid_token", message: "not a well-formed token")
        }
        // Only under the one purpose that may hold the grant, and only with it: a key granted
        // `cardholder_reveal:pan` (before CVVs could be revealed) still gets no CVV.
        let derivingCVVs =
            request.reveal == .pan && request.purpose == Self.cardholderRevealPurpose
            && credential.mayRevealCVV(for: request.purpose)
        do {
            try await tokens.withRevealedCards(
                valid, tenant: credential.tenant, derivingCVVs: derivingCVVs,
                beforeReveal: { found, issued in
                    // Audit before reveal: durably committed before anything is decrypted.
                    let event = AuditEvent(
                        actor: credential.id, type: Self.eventType, outcome: .success, origin: caller.origin,
                        objects: valid.map(\.rawValue), purpose: request.purpose, reference: request.reference,
                        detail: "reveal=\(request.reveal.rawValue) found=\(found.count) "
                            + "missing=\(valid.count - found.count) invalid=\(parsed.count - valid.count)"
                            + (derivingCVVs ? " cvvs=\(issued.count)" : ""))
                    do {
                        try await audit.append(event)
                    } catch {
                        throw DetokenizationError(
                            .unavailable, code: "audit_unavailable",
                            message: "the audit log cannot be written; nothing was revealed")
                    }
                }
            ) { index, card in
                let position = positions[index]
                guard let card else {
                    results[position] = .error(
                        token: valid[index].rawValue, code: "token_not_found", message: "no such token")
                    return
                }
                results[position] = .card(
                    token: card.token.rawValue,
                    pan: request.reveal == .pan ? String(decoding: card.panDigits, as: UTF8.self) : nil,
                    maskedPan: request.reveal == .masked ? Self.mask(card.panDigits) : nil,
                    expMonth: card.expMonth, expYear: card.expYear,
                    cvv: card.cvvDigits.map { String(decoding: $0, as: UTF8.self) })
            }
        } catch let error as DetokenizationError {
            throw error
        } catch {
            logger.error("detokenize failed", metadata: ["error_type": "\(type(of: error))"])
            throw DetokenizationError(.internal, code: "internal_error", message: "detokenization failed")
        }
        return results.map { $0! }
    }

    /// Why `credential` may not have this request answered, if it may not: a purpose it lacks, a
    /// full PAN under a purpose granted masked only, or a limit. The limits count tokens, not
    /// requests (one request may name 1,000), and are taken only when everything else passed.
    private func refusal(
        of request: DetokenizeRequest, credential: Credential, tokens valid: [Token]
    ) -> DetokenizationError? {
        guard credential.purposes.contains(request.purpose) else {
            return .init(
                .forbidden, code: "purpose_not_allowed",
                message: "this API key may not detokenize for this purpose")
        }
        if request.reveal == .pan && !credential.mayRevealPAN(for: request.purpose) {
            return .init(
                .forbidden, code: "reveal_not_allowed",
                message: "this API key may reveal masked PANs only for this purpose")
        }
        if let rateLimiter, let wait = rateLimiter.acquire(credential.id, cost: request.tokens.count) {
            return .init(
                .rateLimited, code: "rate_limited",
                message: "too many tokens detokenized by this API key; retry after \(wait) s", retryAfterSeconds: wait)
        }
        if request.reveal == .pan, let panQuota, let wait = panQuota.take(credential.id, count: valid.count) {
            return .init(
                .rateLimited, code: "daily_limit_reached",
                message: "this API key has revealed its \(panQuota.limit) full PANs for today (UTC)",
                retryAfterSeconds: wait)
        }
        return nil
    }

    /// BIN and last four, the rest `*`.
    /// (PCI DSS 3.4.1 allows at most these.) For a PAN of 12 to 14 digits, BIN and last four
    /// would leave only 2 to 4 digits hidden, a few candidates after the Luhn check: the BIN is
    /// masked too, and only the last four show.
    static func mask(_ digits: UnsafeBufferPointer<UInt8>) -> String {
        var masked = Array(digits)
        let shown = masked.count - 10 >= minimumHiddenDigits ? 6 : 0
        for index in shown..<(masked.count - 4) { masked[index] = UInt8(ascii: "*") }
        return String(decoding: masked, as: UTF8.self)
    }

    /// The fewest digits a masked PAN hides.
    static let minimumHiddenDigits = 5

    static func validate(_ request: DetokenizeRequest) -> DetokenizationError? {
        guard (1...maximumTokens).contains(request.tokens.count) else {
            return .init(
                .invalidInput, code: "invalid_batch_size", message: "tokens must hold 1 to \(maximumTokens) entries")
        }
        guard safePurpose(request.purpose) != nil else {
            return .init(
                .invalidInput, code: "invalid_purpose",
                message: "purpose must be 1 to 64 lower-case letters, digits or _ and hold no card number")
        }
        guard isSafeReference(request.reference) else {
            return .init(
                .invalidInput, code: "invalid_reference",
                message: "reference must be 1 to 128 characters of A-Z a-z 0-9 . _ : / - and hold no card number")
        }
        return nil
    }

    /// A purpose goes into the audit log too (also when refused), so it must not be able to
    /// carry a card number either: the character rule alone allows `x4111111111111111`.
    /// (Plain byte checks: a `Regex` literal is compiled on every call, most of a request's cost.)
    private static func safePurpose(_ purpose: String) -> String? {
        let bytes = Array(purpose.utf8)
        guard (1...64).contains(bytes.count), isLowercaseLetter(bytes[0]),
            bytes.allSatisfy({ isLowercaseLetter($0) || isDigit($0) || $0 == UInt8(ascii: "_") }),
            !CardNumberDetector.containsLuhnValidRun(purpose)
        else { return nil }
        return purpose
    }

    /// A reference goes into the audit log, so it must not be able to carry a card number.
    private static func isSafeReference(_ reference: String) -> Bool {
        let bytes = Array(reference.utf8)
        let punctuation = Array("._:/-".utf8)
        return (1...128).contains(bytes.count)
            && bytes.allSatisfy {
                isLowercaseLetter($0) || (65...90).contains($0) || isDigit($0) || punctuation.contains($0)
            }
            && !CardNumberDetector.containsLuhnValidRun(reference)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (48...57).contains(byte) }
    private static func isLowercaseLetter(_ byte: UInt8) -> Bool { (97...122).contains(byte) }
}
