import Foundation
public import Hummingbird
import NIOCore

/// Why the simulator refused a request: an HTTP status and `{"error": {"code", "message"}}`.
/// Messages are fixed text: they never echo the request, so no card data can leave through them.
public struct AcquirerError: Error, HTTPResponseError, Sendable, Hashable, CustomStringConvertible {
    public let status: HTTPResponse.Status
    /// A stable code.
    public let code: String
    public let message: String

    public init(_ status: HTTPResponse.Status, code: String, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { "AcquirerError(\(status.code) \(code): \(message))" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = ["error": ["code": code, "message": message]]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(body))))
    }

    static let invalidJSON = AcquirerError(
        .badRequest, code: "invalid_json",
        message: "the body must be a JSON object with reference, amount, currency and card")
    static let invalidReference = AcquirerError(
        .badRequest, code: "invalid_reference", message: "reference must be 1 to 64 printable ASCII characters")
    static let invalidAmount = AcquirerError(
        .badRequest, code: "invalid_amount", message: "amount must be a positive integer of minor units")
    static let invalidCurrency = AcquirerError(
        .badRequest, code: "invalid_currency", message: "currency must be three upper-case letters (ISO 4217)")
    static let invalidCardBlock = AcquirerError(
        .badRequest, code: "invalid_card_block",
        message: "card must be the base64 of a sealed box to the acquirer's public key")
    static let invalidCard = AcquirerError(
        .badRequest, code: "invalid_card",
        message: "the card block must hold pan (12 to 19 digits, Luhn-valid), exp_month, exp_year and an optional cvv")
    static let referenceReused = AcquirerError(
        .conflict, code: "reference_reused", message: "this reference was used with another amount or currency")
    static let notFound = AcquirerError(.notFound, code: "not_found", message: "no authorization with this reference")
    static let unavailable = AcquirerError(
        .serviceUnavailable, code: "acquirer_unavailable", message: "the acquirer is unavailable; retry later")
    static let bodyTooLarge = AcquirerError(
        .contentTooLarge, code: "body_too_large", message: "request body is too large")
    static let internalError = AcquirerError(
        .internalServerError, code: "internal_error", message: "the acquirer could not record the authorization")
}
