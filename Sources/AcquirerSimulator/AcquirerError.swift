public import CardTokens
import Foundation
import HTTPListener
public import Hummingbird
import NIOCore

/// Why the simulator refused a request: an HTTP status and `{"error": {"code", "message"}}`.
/// Messages are fixed text: they never echo the request, so no card data can leave through them.
public struct AcquirerError: Error, HTTPResponseError, Sendable, Hashable {
    /// A stable code, returned as `error.code`.
    public struct Code: DomainErrorCode {
        public let rawValue: String
        /// What kind of failure it is, declared with the code (a code cannot exist without one).
        public let category: ErrorCategory
        private init(_ rawValue: String, _ category: ErrorCategory) {
            self.rawValue = rawValue
            self.category = category
        }

        public static let invalidJSON = Self("invalid_json", .invalidInput)
        public static let invalidReference = Self("invalid_reference", .invalidInput)
        public static let invalidAmount = Self("invalid_amount", .invalidInput)
        public static let invalidCurrency = Self("invalid_currency", .invalidInput)
        public static let invalidCardBlock = Self("invalid_card_block", .invalidInput)
        public static let invalidCard = Self("invalid_card", .invalidInput)
        public static let referenceReused = Self("reference_reused", .conflict)
        public static let notFound = Self("not_found", .notFound)
        public static let unavailable = Self("acquirer_unavailable", .unavailable)
        /// Invalid input, answered with HTTP's own status for it (413).
        public static let bodyTooLarge = Self("body_too_large", .invalidInput)
        public static let internalError = Self("internal_error", .internal)
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The status of `code`'s category (the same table as the vault's listeners); 413 for a body
    /// too large.
    public var status: HTTPResponse.Status {
        if code == .bodyTooLarge { return .contentTooLarge }
        return code.category.status
    }

    /// With the HTTP status the simulator answers.
    public var debugDescription: String { "AcquirerError(\(status.code) \(code): \(message))" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = ["error": ["code": code.rawValue, "message": message]]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(body))))
    }

    static let invalidJSON = AcquirerError(
        .invalidJSON, "the body must be a JSON object with reference, amount, currency and card")
    static let invalidReference = AcquirerError(
        .invalidReference, "reference must be 1 to 64 printable ASCII characters")
    static let invalidAmount = AcquirerError(.invalidAmount, "amount must be a positive integer of minor units")
    static let invalidCurrency = AcquirerError(
        .invalidCurrency, "currency must be three upper-case letters (ISO 4217)")
    static let invalidCardBlock = AcquirerError(
        .invalidCardBlock, "card must be the base64 of a sealed box to the acquirer's public key")
    static let invalidCard = AcquirerError(
        .invalidCard,
        "the card block must hold pan (12 to 19 digits, Luhn-valid), exp_month, exp_year and an optional cvv")
    static let referenceReused = AcquirerError(
        .referenceReused, "this reference was used with another amount or currency")
    static let notFound = AcquirerError(.notFound, "no authorization with this reference")
    static let unavailable = AcquirerError(.unavailable, "the acquirer is unavailable; retry later")
    static let bodyTooLarge = AcquirerError(.bodyTooLarge, "request body is too large")
    static let internalError = AcquirerError(.internalError, "the acquirer could not record the authorization")
}

extension AcquirerError: DomainError {}
