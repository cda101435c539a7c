import CardTokens
import Foundation
import Testing

@testable import Wallet

@Suite("Wallet error codes")
struct WalletErrorTests {
    /// Every code declared in WalletError.swift, read from the source: a code added there but
    /// not to `Code.all` could not be decoded from a stored idempotent outcome.
    @Test("Code.all lists every declared code, and each survives a round trip through JSON")
    func everyCodeIsListedAndDecodes() throws {
        let source = try String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("Sources/Wallet/WalletError.swift"),
            encoding: .utf8)
        let declared = Set(source.matches(of: /public static let [A-Za-z]+ = Self\("([a-z_]+)",/).map { String($0.1) })
        #expect(declared.count >= 20)
        #expect(Set(WalletError.Code.all.map(\.rawValue)) == declared)
        for code in WalletError.Code.all {
            let error = WalletError(code, "fixed text")
            let decoded = try JSONDecoder().decode(WalletError.self, from: try JSONEncoder().encode(error))
            #expect(decoded == error && decoded.code.category == code.category)
        }
        let unknown = Data(#"{"code":"not_a_code","message":"x"}"#.utf8)
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(WalletError.self, from: unknown) }
    }

    @Test("Retryable codes carry a Retry-After; each category is the one the API documents")
    func categories() {
        #expect(WalletError(.acquirerTimeout, "").category == .upstreamTimeout)
        #expect(WalletError(.acquirerTimeout, "").retryAfterSeconds == 1)
        #expect(WalletError(.insufficientFunds, "").category == .refused)
        #expect(WalletError(.insufficientFunds, "").retryAfterSeconds == nil)
        #expect(WalletError(.walletNotFound, "").category == .notFound)
        #expect(WalletError(.invalidCursor, "").category == .invalidInput)
        #expect(WalletError(.idempotencyKeyInUse, "").category == .conflict)
    }

    /// A top-up turns an authorization error into a wallet error (WalletService+TopUps.swift);
    /// both declare the same category, so the status is the same whichever a client meets.
    @Test(
        "an authorization error's category is that of the wallet error a top-up makes of it",
        arguments: [
            (AuthorizationError.Code.tokenNotFound, WalletError.Code.tokenNotFound),
            (.acquirerTimeout, .acquirerTimeout),
            (.acquirerUnavailable, .acquirerUnavailable),
            (.notConfigured, .acquirerNotConfigured),
            (.invalidRequest, .internalFailure),
            (.internalFailure, .internalFailure),
        ])
    func authorizationCategories(authorization: AuthorizationError.Code, wallet: WalletError.Code) {
        #expect(authorization.category == wallet.category)
    }
}
