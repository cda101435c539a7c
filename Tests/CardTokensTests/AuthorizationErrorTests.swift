import CardTokens
import Testing

@Suite("AuthorizationError codes")
struct AuthorizationErrorTests {
    /// The categories are those of the wallet errors a top-up turns these codes into, so the
    /// statuses a client sees do not change (WalletTests checks the pairing).
    @Test(
        "each code declares its category",
        arguments: [
            (AuthorizationError.Code.tokenNotFound, ErrorCategory.refused),
            (.invalidRequest, .internal),
            (.notConfigured, .unavailable),
            (.acquirerTimeout, .upstreamTimeout),
            (.acquirerUnavailable, .upstreamFailed),
            (.internalFailure, .internal),
        ])
    func category(code: AuthorizationError.Code, category: ErrorCategory) {
        let error = AuthorizationError(code, "details for the operator")
        #expect(code.category == category)
        #expect(error.category == category)
        #expect(error.errorCode == code.rawValue)
        #expect(error.publicMessage == "details for the operator")
        #expect(error.retryAfterSeconds == nil)
    }

    @Test("description is the type and code only; debugDescription adds the message")
    func descriptions() {
        let error = AuthorizationError(.acquirerTimeout, "the acquirer at 10.0.0.1 did not answer")
        #expect(error.description == "AuthorizationError(acquirer_timeout)")
        #expect("\(error)" == "AuthorizationError(acquirer_timeout)")
        #expect(
            error.debugDescription == "AuthorizationError(acquirer_timeout: the acquirer at 10.0.0.1 did not answer)")
    }
}
