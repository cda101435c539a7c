import AcquirerSimulator
import CardTokens
import Hummingbird
import Testing

@Suite("AcquirerError codes")
struct AcquirerErrorTests {
    /// Each code's category, and the status the simulator answers it with (unchanged by the
    /// categories: 413 stays HTTP's own status for a body too large).
    @Test(
        "each code declares its category, which gives its status",
        arguments: [
            (AcquirerError.Code.invalidJSON, ErrorCategory.invalidInput, HTTPResponse.Status.badRequest),
            (.invalidReference, .invalidInput, .badRequest),
            (.invalidAmount, .invalidInput, .badRequest),
            (.invalidCurrency, .invalidInput, .badRequest),
            (.invalidCardBlock, .invalidInput, .badRequest),
            (.invalidCard, .invalidInput, .badRequest),
            (.referenceReused, .conflict, .conflict),
            (.notFound, .notFound, .notFound),
            (.unavailable, .unavailable, .serviceUnavailable),
            (.bodyTooLarge, .invalidInput, .contentTooLarge),
            (.internalError, .internal, .internalServerError),
        ])
    func category(code: AcquirerError.Code, category: ErrorCategory, status: HTTPResponse.Status) {
        let error = AcquirerError(code, "fixed text")
        #expect(code.category == category)
        #expect(error.category == category)
        #expect(error.status == status)
        #expect(error.errorCode == code.rawValue)
        #expect(error.publicMessage == "fixed text")
    }

    @Test("description is the type and code only; debugDescription adds the status and message")
    func descriptions() {
        let error = AcquirerError(.referenceReused, "this reference was used with another amount or currency")
        #expect(error.description == "AcquirerError(reference_reused)")
        #expect("\(error)" == "AcquirerError(reference_reused)")
        #expect(
            error.debugDescription
                == "AcquirerError(409 reference_reused: this reference was used with another amount or currency)")
    }
}
