import Foundation
import Hummingbird
import NIOCore

/// JSON bodies in and out, `snake_case`, with errors that never echo input.
enum JSONResponse {
    static func make(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try encoder.encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    private static var encoder: JSONEncoder {
        // Response types spell their snake_case keys and format their dates themselves: the
        // encoder's key and date strategies cost a visible share of a tokenize request.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}

enum JSONRequest {
    /// Reads at most `limit` bytes of body and decodes `T` from them.
    /// - Throws: ``APIError`` 413 `body_too_large`, 408 `request_timeout` when the connection ends
    ///   first, or 400 `invalid_json` / `invalid_request` with the offending field's name (never
    ///   its value).
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, limit: Int) async throws -> T {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch is NIOTooManyBytesError {
            throw APIError.bodyTooLarge
        } catch {
            // The connection ended (request or idle timeout, client gone) before the body was
            // complete: the client's doing, not a fault to log as one.
            throw APIError.bodyIncomplete
        }
        return try decode(type, from: Data(buffer.readableBytesView))
    }

    static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do {
            return try decoder.decode(type, from: data)
        } catch let error as DecodingError {
            throw APIError(error)
        }
    }

    private static var decoder: JSONDecoder {
        // Request types spell their snake_case keys (no key strategy: it converts every key).
        JSONDecoder()
    }
}

extension KeyedDecodingContainer {
    /// An optional field that may be left out but not be `null` (finding 20). The document calls
    /// these fields non-nullable, and a `null` is more likely a client's bug (a CVV variable that
    /// was never set) than a wish to leave the field out, so it is refused as `invalid_field`
    /// rather than read as absent.
    func decodeIfPresentNotNull<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { return nil }
        if try decodeNil(forKey: key) {
            throw DecodingError.valueNotFound(
                T.self, .init(codingPath: codingPath + [key], debugDescription: "null for an optional field"))
        }
        return try decode(T.self, forKey: key)
    }

    /// An integer field. For a number that is no `T` (`12.5`, `1e30`) Foundation's decoder
    /// throws its internal `JSONError` (whose description holds the number), not a
    /// `DecodingError`; uncaught it became `invalid_json` for the whole body (and failed a whole
    /// batch). This names the field instead (`invalid_field`).
    func decodeInteger<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        do {
            return try decode(T.self, forKey: key)
        } catch let error as DecodingError {
            throw error
        } catch {
            throw DecodingError.dataCorruptedError(forKey: key, in: self, debugDescription: "not an integer")
        }
    }
}

extension APIError {
    /// A decoding failure, described by field path and expected type only.
    init(_ error: DecodingError) {
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            let keys = codingPath + (last.map { [$0] } ?? [])
            let names = keys.map { key in key.intValue.map { "[\($0)]" } ?? snakeCase(key.stringValue) }
            return names.isEmpty ? "body" : names.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .keyNotFound(let key, let context):
            self.init(.badRequest, code: "missing_field", message: "\(path(context.codingPath, key)) is required")
        case .valueNotFound(let type, let context):
            self.init(
                .badRequest, code: "invalid_field", message: "\(path(context.codingPath)) must be \(describe(type))")
        case .typeMismatch(let type, let context):
            self.init(
                .badRequest, code: "invalid_field", message: "\(path(context.codingPath)) must be \(describe(type))")
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            self.init(.badRequest, code: "invalid_json", message: "request body is not valid JSON")
        case .dataCorrupted(let context):
            self.init(.badRequest, code: "invalid_field", message: "\(path(context.codingPath)) has an invalid value")
        @unknown default:
            self.init(.badRequest, code: "invalid_request", message: "request body could not be read")
        }
    }
}

private func describe(_ type: Any.Type) -> String {
    switch type {
    case is String.Type: "a string"
    case is Int.Type: "an integer"
    case is Bool.Type: "true or false"
    case is [Any].Type: "an array"
    default: "a value of another type"
    }
}

/// `expMonth` → `exp_month`, to name fields as the client spelled them.
private func snakeCase(_ name: String) -> String {
    var output = ""
    for character in name {
        if character.isUppercase {
            output += "_" + character.lowercased()
        } else {
            output.append(character)
        }
    }
    return output
}
