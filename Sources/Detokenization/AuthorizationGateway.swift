import AsyncHTTPClient
public import Audit
public import CardTokens
import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import SQLiteSupport
@_spi(Detokenization) public import TokenVault
import VaultCrypto

/// The card authorization gateway (DESIGN §2, §5): charges a card on file for the wallet
/// without revealing it (use without reveal).
///
/// For each request it
/// 1. checks the request (token, amount > 0, currency of three upper-case letters, reference of
///    1 to 64 printable ASCII characters that holds no card number);
/// 2. writes the audit record durably (type `detokenize`, purpose `authorization`, actor
///    `requestedBy`, the token, the reference) before anything is decrypted; if it cannot be
///    written, nothing is decrypted or sent (fail closed). Refusals are audited too;
/// 3. opens the card record and takes the held CVV, if any, which deletes it (used at most once:
///    a retry, or the next charge, goes without CVV as a stored-credential charge);
/// 4. builds the card block `{"pan","exp_month","exp_year","cvv"?}` in a wiped scratch buffer and
///    seals it to the acquirer's public key (`crypto_box_seal`), so no PAN crosses the wire in
///    clear, even over plain HTTP;
/// 5. posts `{"reference","amount","currency","card"}` to `{base}/v1/authorizations` and returns
///    only the decision, the auth code and the acquirer's reference.
///
/// The acquirer answers a repeated reference with its first answer, so after
/// `acquirer_timeout` or `acquirer_unavailable` the caller retries with the same reference and
/// can never charge twice. Logs carry token, reference, decision, acquirer reference and latency only.
public final class AuthorizationGateway: CardAuthorizing {
    /// The audit event type (an authorization is a detokenization whose purpose is `authorization`).
    public static let eventType = "detokenize"
    /// The audit purpose.
    public static let purpose = "authorization"
    /// The longest reference accepted.
    public static let maximumReferenceLength = 64
    /// The largest answer body read from the acquirer.
    static let maximumAnswerByteCount = 64 * 1024

    private let tokens: TokenVault
    private let audit: any AuditLog
    private let acquirer: AcquirerEndpoint?
    private let logger: Logger
    private let origin: String
    private let client: HTTPClient

    /// - Parameters:
    ///   - acquirer: where to send authorizations; `nil` refuses every request with
    ///     `acquirer_not_configured`.
    ///   - origin: the audit records' origin when a request names none (`AuthorizationRequest.origin`,
    ///     the HTTP caller's address, is used when given).
    public init(
        tokens: TokenVault, audit: any AuditLog, acquirer: AcquirerEndpoint?, logger: Logger,
        origin: String = "wallet"
    ) {
        self.tokens = tokens
        self.audit = audit
        self.acquirer = acquirer
        self.logger = logger
        self.origin = origin
        self.client = HTTPClient.acquirer
    }

    /// Charges `request.amount` to the card of `request.token`.
    ///
    /// - Returns: approved or declined (a decline is an outcome, not an error).
    /// - Throws: ``AuthorizationError``: `invalid_request`, `token_not_found`,
    ///   `acquirer_not_configured`, `acquirer_timeout` (outcome unknown; retry with the same
    ///   reference), `acquirer_unavailable` (connection failed or the acquirer answered 5xx; retry
    ///   with the same reference), `internal_failure` (e.g. the audit log refused the write, or the
    ///   acquirer refused the request with a 4xx). A `409 reference_reused` from the acquirer (the
    ///   reference was used before with another amount or currency) is `invalid_request`.
    public func authorize(_ request: AuthorizationRequest) async throws(AuthorizationError) -> AuthorizationOutcome {
        let started = ContinuousClock.now
        let token = try? Token(validating: request.token.rawValue)
        if let problem = Self.problem(with: request, tokenIsValid: token != nil) {
            await refuse(request, token: token, error: problem)
            throw problem
        }
        guard let token else { throw AuthorizationError(.invalidRequest, "token is not a well-formed token") }
        guard let acquirer else {
            let error = AuthorizationError(.notConfigured, "no acquirer is configured")
            await refuse(request, token: token, error: error)
            throw error
        }
        let sealed = try await sealedCardBlock(request, token: token, to: acquirer)
        do {
            let outcome = try await send(request, sealedCard: sealed.card, to: acquirer)
            logger.info(
                "card authorization",
                metadata: [
                    "token": "\(token)", "reference": "\(request.reference)",
                    "decision": "\(outcome.decision.rawValue)",
                    "decline_code": "\(outcome.declineCode ?? "-")",
                    "acquirer_reference": "\(outcome.acquirerReference)", "cvv_sent": "\(sealed.cvvSent)",
                    "latency_ms": "\((ContinuousClock.now - started).milliseconds)",
                ])
            return outcome
        } catch {
            logger.warning(
                "card authorization failed",
                metadata: [
                    "token": "\(token)", "reference": "\(request.reference)", "error_code": "\(error.code)",
                    "cvv_sent": "\(sealed.cvvSent)", "latency_ms": "\((ContinuousClock.now - started).milliseconds)",
                ])
            throw error
        }
    }

    // MARK: - Audit, reveal, seal

    /// Audits, opens the card, takes the CVV and seals the card block; the plaintext lives only
    /// in a scratch buffer wiped before this returns.
    private func sealedCardBlock(
        _ request: AuthorizationRequest, token: Token, to acquirer: AcquirerEndpoint
    ) async throws(AuthorizationError) -> (card: [UInt8], cvvSent: Bool) {
        let scratch = SecretBytes(zeroedCount: CardBlockWriter.capacity, protection: .wipedOnRelease)
        defer { scratch.wipe() }
        var length = 0
        do {
            try await tokens.withRevealedCards(
                [token], tenant: request.tenant,
                beforeReveal: { found, _ in
                    guard found.contains(token) else {
                        let error = AuthorizationError(.tokenNotFound, "no such token")
                        await refuse(request, token: token, error: error)
                        throw error
                    }
                    // Audit before reveal: durably committed before anything is decrypted.
                    let event = AuditEvent(
                        actor: request.requestedBy, type: Self.eventType, outcome: .success,
                        origin: origin(of: request),
                        objects: [token.rawValue], purpose: Self.purpose, reference: request.reference,
                        detail: "use=acquirer_authorization amount=\(request.amount) currency=\(request.currency)")
                    do {
                        try await audit.append(event)
                    } catch {
                        logger.error(
                            "audit append failed; card authorization refused",
                            metadata: ["token": "\(token)", "reference": "\(request.reference)"])
                        throw AuthorizationError(
                            .internalFailure, "the audit log cannot be written; nothing was sent to the acquirer")
                    }
                }
            ) { _, card in
                guard let card else { throw AuthorizationError(.tokenNotFound, "no such token") }
                length = scratch.withUnsafeMutableBytes { CardBlockWriter.begin(card, into: $0) }
            }
            // Taken (read and deleted in one transaction) only once the audit record is durable.
            let cvvSent = try await tokens.withTakenCVV(of: token) { digits in
                length = scratch.withUnsafeMutableBytes { CardBlockWriter.end(cvv: digits, at: length, into: $0) }
                return digits != nil
            }
            let card = try scratch.withUnsafeBytes { block in
                try SealedBox.seal(UnsafeRawBufferPointer(rebasing: block[0..<length]), to: acquirer.publicKey)
            }
            return (card, cvvSent)
        } catch let error as AuthorizationError {
            throw error
        } catch {
            logger.error(
                "card authorization could not open the card",
                metadata: [
                    "token": "\(token)", "reference": "\(request.reference)", "error_type": "\(type(of: error))",
                ])
            throw AuthorizationError(.internalFailure, "the card could not be prepared for the acquirer")
        }
    }

    /// Audits a refused request (best effort: a refusal reveals nothing, so a failed audit write
    /// is logged and the refusal stands). Fields that failed validation are left out: they might
    /// hold a card number.
    private func refuse(_ request: AuthorizationRequest, token: Token?, error: AuthorizationError) async {
        let event = AuditEvent(
            actor: Self.isSafeText(request.requestedBy, maximumLength: 128) ? request.requestedBy : "invalid",
            type: Self.eventType, outcome: .denied, origin: origin(of: request),
            objects: token.map { [$0.rawValue] } ?? [],
            purpose: Self.purpose,
            reference: Self.isSafeText(request.reference, maximumLength: Self.maximumReferenceLength)
                ? request.reference : nil,
            detail: "refused=\(error.code)")
        do {
            try await audit.append(event)
        } catch {
            logger.error("audit append failed for a refused card authorization")
        }
    }

    /// The caller's address when the request carries a well-formed one, else the configured
    /// origin: the text goes into the audit log, so it is checked like the other fields.
    private func origin(of request: AuthorizationRequest) -> String {
        guard let caller = request.origin, Self.isSafeText(caller, maximumLength: 128) else { return origin }
        return caller
    }

    // MARK: - HTTP

    private struct AuthorizationBody: Encodable {
        var reference: String
        var amount: Int64
        var currency: String
        var card: String
    }

    private struct AcquirerAnswer: Decodable {
        var reference: String
        var status: String
        var authCode: String?
        var acquirerReference: String
        var declineCode: String?

        enum CodingKeys: String, CodingKey {
            case reference, status
            case authCode = "auth_code"
            case acquirerReference = "acquirer_reference"
            case declineCode = "decline_code"
        }
    }

    public func outcome(
        ofReference reference: String
    ) async throws(AuthorizationError) -> AuthorizationOutcome? {
        guard let acquirer else {
            throw AuthorizationError(.notConfigured, "no acquirer is configured (vault serve --acquirer-url)")
        }
        guard Self.isSafeText(reference, maximumLength: 64),
            let path = reference.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed)
        else { throw AuthorizationError(.invalidRequest, "the reference is not one the vault sends") }
        var http = HTTPClientRequest(url: acquirer.baseURL + "/v1/authorizations/" + path)
        http.method = .GET
        http.headers.add(name: "Accept", value: "application/json")
        let (status, body) = try await exchange(http, timeout: acquirer.timeout)
        switch status {
        case 200: return try Self.outcome(of: body, reference: reference)
        case 404: return nil
        case 500...599:
            throw AuthorizationError(.acquirerUnavailable, "the acquirer answered \(status); ask again later")
        default:
            throw AuthorizationError(.internalFailure, "the acquirer refused the query with HTTP \(status)")
        }
    }

    /// Thrown when the answer's body did not arrive in time.
    private struct BodyTimeout: Error {}

    private func send(
        _ request: AuthorizationRequest, sealedCard: [UInt8], to acquirer: AcquirerEndpoint
    ) async throws(AuthorizationError) -> AuthorizationOutcome {
        var http = HTTPClientRequest(url: acquirer.baseURL + "/v1/authorizations")
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/json")
        http.headers.add(name: "Accept", value: "application/json")
        do {
            let body = try JSONEncoder().encode(
                AuthorizationBody(
                    reference: request.reference, amount: request.amount, currency: request.currency,
                    card: Data(sealedCard).base64EncodedString()))
            http.body = .bytes(ByteBuffer(bytes: body))
        } catch {
            throw AuthorizationError(.internalFailure, "the authorization request could not be encoded")
        }
        let (status, body) = try await exchange(http, timeout: acquirer.timeout)
        switch status {
        case 200:
            return try Self.outcome(of: body, reference: request.reference)
        case 500...599:
            throw AuthorizationError(
                .acquirerUnavailable, "the acquirer answered \(status); retry with the same reference")
        case 409:
            throw AuthorizationError(
                .invalidRequest,
                "the acquirer refused the reference: it was used before with another amount or currency")
        default:
            throw AuthorizationError(.internalFailure, "the acquirer refused the request with HTTP \(status)")
        }
    }

    /// Sends `request` and reads the answer, all within `timeout`.
    private func exchange(
        _ request: HTTPClientRequest, timeout: Duration
    ) async throws(AuthorizationError) -> (status: UInt, body: ByteBuffer) {
        let deadline = NIODeadline.now() + TimeAmount(timeout)
        do {
            let response = try await client.execute(request, deadline: deadline, logger: nil)
            // The deadline covers the head; the body gets what is left (at least a moment, so an
            // answer whose head arrived in time is not thrown away).
            let left = max(Duration(deadline - NIODeadline.now()), .milliseconds(100))
            let body = try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
                group.addTask { try await response.body.collect(upTo: Self.maximumAnswerByteCount) }
                group.addTask {
                    try await Task.sleep(for: left)
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let buffer = first else { throw BodyTimeout() }
                return buffer
            }
            return (response.status.code, body)
        } catch let error as HTTPClientError
            where error == .deadlineExceeded || error == .readTimeout || error == .writeTimeout
        {
            throw AuthorizationError(
                .acquirerTimeout, "the acquirer did not answer in time; retry with the same reference")
        } catch is BodyTimeout {
            throw AuthorizationError(
                .acquirerTimeout, "the acquirer did not answer in time; retry with the same reference")
        } catch {
            // Connection refused or reset, DNS, TLS, …: the acquirer could not be reached.
            logger.debug("acquirer unreachable", metadata: ["error_type": "\(type(of: error))"])
            throw AuthorizationError(
                .acquirerUnavailable, "the acquirer could not be reached; retry with the same reference")
        }
    }

    /// Reads a 200 answer; anything malformed is `internal_failure` (never echoed).
    private static func outcome(
        of body: ByteBuffer, reference: String
    ) throws(AuthorizationError)
        -> AuthorizationOutcome
    {
        let unreadable = AuthorizationError(.internalFailure, "the acquirer's answer could not be read")
        guard let answer = try? JSONDecoder().decode(AcquirerAnswer.self, from: Data(body.readableBytesView)),
            answer.reference == reference, !answer.acquirerReference.isEmpty,
            let decision = AuthorizationOutcome.Decision(rawValue: answer.status)
        else { throw unreadable }
        switch decision {
        case .approved:
            guard let code = answer.authCode, code.utf8.count == 6, code.utf8.allSatisfy({ (48...57).contains($0) })
            else { throw unreadable }
            return AuthorizationOutcome(
                decision: .approved, authCode: code, acquirerReference: answer.acquirerReference, declineCode: nil)
        case .declined:
            return AuthorizationOutcome(
                decision: .declined, authCode: nil, acquirerReference: answer.acquirerReference,
                declineCode: answer.declineCode ?? "declined")
        }
    }

    // MARK: - Validation

    static func problem(with request: AuthorizationRequest, tokenIsValid: Bool) -> AuthorizationError? {
        guard tokenIsValid else { return AuthorizationError(.invalidRequest, "token is not a well-formed token") }
        guard request.amount > 0 else {
            return AuthorizationError(.invalidRequest, "amount must be a positive number of minor units")
        }
        let currency = request.currency.utf8
        guard currency.count == 3, currency.allSatisfy({ (65...90).contains($0) }) else {
            return AuthorizationError(.invalidRequest, "currency must be three upper-case letters (ISO 4217)")
        }
        guard isSafeText(request.reference, maximumLength: maximumReferenceLength) else {
            return AuthorizationError(
                .invalidRequest,
                "reference must be 1 to \(maximumReferenceLength) printable ASCII characters and hold no card number")
        }
        guard isSafeText(request.requestedBy, maximumLength: 128) else {
            return AuthorizationError(
                .invalidRequest, "requestedBy must be 1 to 128 printable ASCII characters and hold no card number")
        }
        return nil
    }

    /// 1 to `maximumLength` printable ASCII characters, with no run of 12 to 19 digits that
    /// passes the Luhn check: the text goes into the audit log, the logs and the acquirer.
    static func isSafeText(_ text: String, maximumLength: Int) -> Bool {
        let bytes = text.utf8
        return (1...maximumLength).contains(bytes.count) && bytes.allSatisfy({ (0x20...0x7E).contains($0) })
            && !CardNumberDetector.containsLuhnValidRun(text)
    }
}

/// Writes the card block `{"pan":"…","exp_month":M,"exp_year":Y[,"cvv":"…"]}` straight into a
/// scratch buffer, so the PAN and CVV never pass through a Swift `String`.
enum CardBlockWriter {
    /// Enough for the longest block (19-digit PAN, 4-digit CVV: 73 bytes).
    static let capacity = 128

    /// Writes everything up to the expiry year; returns the length written.
    static func begin(_ card: RevealedCard, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var offset = 0
        put(#"{"pan":""#, into: buffer, at: &offset)
        put(card.panDigits, into: buffer, at: &offset)
        put(#"","exp_month":"#, into: buffer, at: &offset)
        put(String(card.expMonth).utf8, into: buffer, at: &offset)
        put(#","exp_year":"#, into: buffer, at: &offset)
        put(String(card.expYear).utf8, into: buffer, at: &offset)
        return offset
    }

    /// Adds the CVV, if any, and closes the object; returns the total length.
    static func end(
        cvv: UnsafeBufferPointer<UInt8>?, at start: Int, into buffer: UnsafeMutableRawBufferPointer
    )
        -> Int
    {
        var offset = start
        if let cvv {
            put(#","cvv":""#, into: buffer, at: &offset)
            put(cvv, into: buffer, at: &offset)
            put("\"", into: buffer, at: &offset)
        }
        put("}", into: buffer, at: &offset)
        return offset
    }

    private static func put(_ text: StaticString, into buffer: UnsafeMutableRawBufferPointer, at offset: inout Int) {
        text.withUTF8Buffer { put($0, into: buffer, at: &offset) }
    }

    private static func put(
        _ bytes: some Collection<UInt8>, into buffer: UnsafeMutableRawBufferPointer, at offset: inout Int
    ) {
        precondition(offset + bytes.count <= buffer.count, "card block scratch buffer too small")
        for byte in bytes {
            buffer[offset] = byte
            offset += 1
        }
    }
}
