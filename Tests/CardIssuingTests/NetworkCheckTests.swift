import Audit
import CDETestSupport
import CardTokens
import Foundation
import Testing
import VaultTestSupport

@testable import CardIssuing
@testable import TokenVault

@Suite("Card issuing: the network's card check", .timeLimit(.minutes(1)))
struct NetworkCheckTests {
    /// Found by Scripts/bench: vault.db's reads mixed a synchronous lookup (blocking a cooperative
    /// thread until a reader is free) with asynchronous ones (holding a reader until a cooperative
    /// thread resumes them); under load every cooperative thread waited for a reader and every
    /// reader for a thread. A deadlock fails by the suite's time limit.
    @Test("hundreds of concurrent checks, with metadata reads beside them, all answer")
    func concurrentChecks() async throws {
        try await withFreshVault("network-check-load") { fresh in
            let issuer = try fresh.issuer()
            var cards = [(CardInput, Token)]()
            for _ in 0..<8 {
                let metadata = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
                let pan = try await fresh.vault.pan(of: metadata.token)
                let cvv = try await issuer.withCVV(of: metadata.token, tenant: issuingPrincipal.tenant) {
                    String(decoding: $0, as: UTF8.self)
                }
                cards.append(
                    (
                        try CardInput(
                            pan: pan, expMonth: metadata.expMonth, expYear: metadata.expYear, cvv: cvv,
                            now: .distantPast),
                        metadata.token
                    ))
            }
            let checks = cards
            let outcomes = try await withThrowingTaskGroup(of: Bool.self) { group in
                for index in 0..<800 {
                    let (card, token) = checks[index % checks.count]
                    group.addTask {
                        if index.isMultiple(of: 3) {
                            return try await fresh.vault.tokens.metadata(of: token, for: issuingPrincipal).token
                                == token
                        }
                        return try await issuer.check(card) == .card(token)
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.count == 800 && outcomes.allSatisfy { $0 })
        }
    }
}

@Suite("Card issuing: card-verification key rotation", .timeLimit(.minutes(1)))
struct CardVerificationKeyRotationTests {
    @Test("a new CVK version issues new cards; a card issued before keeps its CVV; status counts both")
    func rotation() async throws {
        try await withFreshVault("cvk-rotation") { fresh in
            let issuer = try fresh.issuer()
            func cvv(_ token: Token) async throws -> String {
                try await issuer.withCVV(of: token, tenant: issuingPrincipal.tenant) {
                    String(decoding: $0, as: UTF8.self)
                }
            }
            let before = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
            let cvvBefore = try await cvv(before.token)
            #expect(try await fresh.vault.keys.rotateCardVerificationKey() == 2)
            let after = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
            #expect(try await cvv(before.token) == cvvBefore, "an issued card's CVV never changes")
            #expect(
                try await fresh.vault.integer("SELECT cvk_version FROM cards WHERE token = '\(after.token.rawValue)'")
                    == 2)
            let status = try await fresh.vault.keys.status().cardVerificationKeys
            #expect(status.map(\.version) == [1, 2] && status.map(\.issuedCards) == [1, 1])
            let types = try await fresh.vault.audit.records().map(\.event.type)
            #expect(types.contains("keys.create_cvk") && types.contains("keys.rotate_cvk"))
        }
    }
}
