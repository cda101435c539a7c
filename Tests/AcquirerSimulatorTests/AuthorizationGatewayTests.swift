import AcquirerSimulator
import Audit
import CDETestSupport
import CardTokens
import Detokenization
import Foundation
import GRDB
import InMemoryLogging
import Logging
import Synchronization
import Testing
import TokenVault
import VaultCrypto
import VaultTestSupport

/// The authorization gateway end to end: a real vault in a temporary folder, the simulator on
/// a loopback port, HTTP in between.
@Suite("Authorization gateway", .timeLimit(.minutes(10)))
struct AuthorizationGatewayTests {
    static func request(
        _ token: Token, amount: Int64 = 1000, currency: String = "EUR", reference: String = "topup-1",
        requestedBy: String = "wallet-service"
    ) -> AuthorizationRequest {
        AuthorizationRequest(
            token: token, amount: amount, currency: currency, reference: reference, requestedBy: requestedBy)
    }

    /// How many CVVs `vault.db` holds.
    static func heldCVVs(_ vault: Vault) async throws -> Int {
        try await vault.database.pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM cvvs") ?? -1 }
    }

    @Test func approvedAndAuditedBeforeTheReveal() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            let spy = SpyAuditLog(base: harness.vault.audit) { try await harness.simulator.records().count }
            let gateway = try harness.gateway(audit: spy)
            let outcome = try await gateway.authorize(Self.request(token, amount: 2500, reference: "topup-42"))
            #expect(outcome.decision == .approved)
            let code = try #require(outcome.authCode)
            #expect(code.count == 6 && code.allSatisfy(\.isNumber))
            #expect(outcome.declineCode == nil)
            let record = try await harness.simulator.authorization(reference: "topup-42")
            #expect(outcome.acquirerReference == record.acquirerReference)
            #expect(record.authCode == code)
            #expect(record.amount == 2500 && record.currency == "EUR")
            #expect(record.bin == "411111" && record.last4 == "1111")
            #expect(record.cvvPresent)
            // One audit record, appended before the acquirer saw anything.
            let appends = spy.appends
            #expect(appends.count == 1)
            #expect(appends.first?.note == 0, "the acquirer had a record when the append committed")
            let event = try #require(try await harness.auditRecords().last?.event)
            #expect(event.type == "detokenize")
            #expect(event.purpose == "authorization")
            #expect(event.actor == "wallet-service")
            #expect(event.objects == [token.rawValue])
            #expect(event.reference == "topup-42")
            #expect(event.outcome == .success)
            #expect(event.detail?.contains("amount=2500 currency=EUR") == true)
            // The CVV was used, so it is gone.
            #expect(try await Self.heldCVVs(harness.vault) == 0)
            #expect(try await harness.vault.tokens.metadata(of: token).cvvExpiresAt == nil)
        }
    }

    @Test("asked again by reference, the acquirer answers its decision, or that it never received it")
    func outcomeByReference() async throws {
        try await withGateway { harness in
            let gateway = try harness.gateway()
            let approved = try await gateway.authorize(
                Self.request(try await harness.tokenize(.visa), amount: 700, reference: "topup-asked"))
            #expect(try await gateway.outcome(ofReference: "topup-asked") == approved)
            let declined = try await gateway.authorize(
                Self.request(try await harness.tokenize(.declined), reference: "topup-declined"))
            #expect(try await gateway.outcome(ofReference: "topup-declined") == declined)
            #expect(try await gateway.outcome(ofReference: "topup-never-sent") == nil)
            // Nothing a reference could carry to the acquirer that the vault would not send.
            let bad = await authorizationError { try await gateway.outcome(ofReference: "4111111111111111") }
            #expect(bad?.code == .invalidRequest)
            let none = await authorizationError {
                try await harness.gateway(endpoint: .some(nil)).outcome(ofReference: "topup-asked")
            }
            #expect(none?.code == .notConfigured)
        }
    }

    @Test("asking an acquirer that cannot be reached is acquirer_unavailable")
    func outcomeUnreachable() async throws {
        let port = try await closedPort()
        try await withGateway { harness in
            let key = harness.simulatorDirectory + "/" + AcquirerKeyPair.publicKeyFileName
            let gateway = try harness.gateway(
                endpoint: try AcquirerEndpoint(baseURL: "http://127.0.0.1:\(port)", publicKeyFile: key))
            let error = await authorizationError { try await gateway.outcome(ofReference: "topup-1") }
            #expect(error?.code == .acquirerUnavailable)
        }
    }

    @Test func aFourDigitCVVIsSent() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.amex.with(cvv: "7373"))
            let outcome = try await harness.gateway().authorize(Self.request(token, reference: "amex-1"))
            #expect(outcome.decision == .approved)
            #expect(try await harness.simulator.authorization(reference: "amex-1").cvvPresent)
        }
    }

    @Test func declinedIsAnOutcomeNotAnError() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.declined)
            let outcome = try await harness.gateway().authorize(Self.request(token))
            #expect(outcome.decision == .declined)
            #expect(outcome.declineCode == "do_not_honor")
            #expect(outcome.authCode == nil)
            #expect(outcome.acquirerReference.hasPrefix("acq_"))
            let funds = try await harness.tokenize(.insufficientFunds)
            let second = try await harness.gateway().authorize(Self.request(funds, reference: "topup-2"))
            #expect(second.declineCode == "insufficient_funds")
            let over = try await harness.gateway().authorize(
                Self.request(try await harness.tokenize(.visa), amount: 1_000_001, reference: "topup-3"))
            #expect(over.declineCode == "amount_limit_exceeded")
        }
    }

    @Test func anIncorrectCVVIsDeclinedAndStillUsedUp() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.mastercard.with(cvv: "123"))
            let outcome = try await harness.gateway().authorize(Self.request(token))
            #expect(outcome.decision == .declined)
            #expect(outcome.declineCode == "incorrect_cvv")
            #expect(try await Self.heldCVVs(harness.vault) == 0)
        }
    }

    @Test func theCVVIsUsedAtMostOnce() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            let gateway = try harness.gateway()
            _ = try await gateway.authorize(Self.request(token, reference: "first"))
            let second = try await gateway.authorize(Self.request(token, reference: "second"))
            #expect(second.decision == .approved, "without CVV: a stored-credential charge")
            #expect(try await harness.simulator.authorization(reference: "first").cvvPresent)
            #expect(try await harness.simulator.authorization(reference: "second").cvvPresent == false)
        }
    }

    @Test func concurrentAuthorizationsGetTheCVVOnlyOnce() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa2.with(cvv: "737"))
            let gateway = try harness.gateway()
            try await withThrowingTaskGroup(of: AuthorizationOutcome.self) { group in
                for index in 0..<8 {
                    group.addTask { try await gateway.authorize(Self.request(token, reference: "race-\(index)")) }
                }
                for try await outcome in group { #expect(outcome.decision == .approved) }
            }
            let records = try await harness.simulator.records()
            #expect(records.count == 8)
            #expect(records.count(where: \.cvvPresent) == 1)
        }
    }

    @Test func aRetryWithTheSameReferenceGetsTheFirstAnswer() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            let gateway = try harness.gateway()
            let first = try await gateway.authorize(Self.request(token, reference: "same"))
            let retry = try await gateway.authorize(Self.request(token, reference: "same"))
            #expect(retry == first)
            #expect(try await harness.simulator.records().count == 1)
            // The same reference for another amount is the caller's mistake.
            let error = await authorizationError {
                try await gateway.authorize(Self.request(token, amount: 999, reference: "same"))
            }
            #expect(error?.code == .invalidRequest)
            #expect(error?.isRetryable == false)
        }
    }

    @Test func aSlowAcquirerIsATimeout() async throws {
        try await withGateway(configuration: .init(slowDelay: .seconds(2))) { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            let gateway = try harness.gateway(timeout: .milliseconds(300))
            // The acquirer answers after 2 s; the error says the gateway gave up first (no
            // wall-clock assertion: a loaded machine may take longer than the timeout to notice).
            let error = await authorizationError {
                try await gateway.authorize(Self.request(token, amount: AcquirerConfiguration.slowAmount))
            }
            #expect(error?.code == .acquirerTimeout)
            #expect(error?.isRetryable == true)
            #expect(try await Self.heldCVVs(harness.vault) == 0, "sent, so used")
        }
    }

    @Test func a503IsUnavailable() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa)
            let error = await authorizationError {
                try await harness.gateway().authorize(
                    Self.request(token, amount: AcquirerConfiguration.unavailableAmount))
            }
            #expect(error?.code == .acquirerUnavailable)
            #expect(error?.isRetryable == true)
            #expect(try await harness.simulator.records().isEmpty)
        }
    }

    @Test func anAcquirerThatIsDownIsUnavailable() async throws {
        let port = try await closedPort()
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa)
            let key = try harness.endpoint().publicKey
            let endpoint = try AcquirerEndpoint(
                baseURL: "http://127.0.0.1:\(port)", publicKey: key, timeout: .seconds(60))
            let error = await authorizationError {
                try await harness.gateway(endpoint: endpoint).authorize(Self.request(token))
            }
            #expect(error?.code == .acquirerUnavailable)
            #expect(error?.isRetryable == true)
        }
    }

    @Test func anAcquirer4xxIsAnInternalFailureWithoutCardData() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            // Sealed to a key the acquirer does not hold: it answers 400 invalid_card_block.
            let endpoint = try AcquirerEndpoint(
                baseURL: harness.server.baseURL, publicKey: SealedBox.KeyPair.generate().publicKey)
            let error = await authorizationError {
                try await harness.gateway(endpoint: endpoint).authorize(Self.request(token))
            }
            #expect(error?.code == .internalFailure)
            #expect(error?.message == "the acquirer refused the request with HTTP 400")
            #expect(error?.isRetryable == false)
            #expect(try await harness.simulator.records().isEmpty)
        }
    }

    @Test func theStoreTakesACVVOnceAndNeverAnExpiredOne() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            let taken = try await harness.vault.store.takeCVV(of: token, now: Date())
            #expect(taken != nil)
            #expect(try await harness.vault.store.takeCVV(of: token, now: Date()) == nil)
            let other = try await harness.tokenize(.visa2.with(cvv: "737"))
            let late = Date().addingTimeInterval(harness.vault.tokens.cvvTimeToLive + 1)
            #expect(try await harness.vault.store.takeCVV(of: other, now: late) == nil, "expired: not handed out")
            #expect(try await Self.heldCVVs(harness.vault) == 0, "and deleted")
        }
    }

    @Test func aDeletedOrUnknownTokenIsNotFoundAndAudited() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            try await harness.vault.tokens.delete(token)
            let gateway = try harness.gateway()
            let deleted = await authorizationError { try await gateway.authorize(Self.request(token)) }
            #expect(deleted?.code == .tokenNotFound)
            let unknown = await authorizationError {
                try await gateway.authorize(Self.request(Token(unchecked: "tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")))
            }
            #expect(unknown?.code == .tokenNotFound)
            #expect(try await harness.simulator.records().isEmpty)
            let events = try await harness.auditRecords().map(\.event).filter { $0.purpose == "authorization" }
            #expect(events.count == 2)
            #expect(events.allSatisfy { $0.outcome == .denied && $0.detail == "refused=token_not_found" })
            #expect(events.first?.objects == [token.rawValue])
        }
    }

    @Test func withoutAnAcquirerNothingIsRevealed() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            let gateway = try harness.gateway(endpoint: .some(nil))
            let error = await authorizationError { try await gateway.authorize(Self.request(token)) }
            #expect(error?.code == .notConfigured)
            #expect(try await Self.heldCVVs(harness.vault) == 1)
            #expect(try await harness.auditRecords().last?.event.detail == "refused=acquirer_not_configured")
        }
    }

    static let invalidCases: [(amount: Int64, currency: String, reference: String, requestedBy: String)] = [
        (0, "EUR", "r-1", "wallet"),
        (-5, "EUR", "r-1", "wallet"),
        (100, "eur", "r-1", "wallet"),
        (100, "EURO", "r-1", "wallet"),
        (100, "EUR", "", "wallet"),
        (100, "EUR", String(repeating: "r", count: 65), "wallet"),
        (100, "EUR", "topup-\u{e9}", "wallet"),
        (100, "EUR", "topup 4111111111111111", "wallet"),
        (100, "EUR", "r-1", "4242424242424242"),
        (100, "EUR", "r-1", ""),
    ]

    @Test("invalid requests are refused before anything is revealed", arguments: invalidCases)
    func invalidRequests(amount: Int64, currency: String, reference: String, requestedBy: String) async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            let error = await authorizationError {
                try await harness.gateway().authorize(
                    Self.request(
                        token, amount: amount, currency: currency, reference: reference, requestedBy: requestedBy))
            }
            #expect(error?.code == .invalidRequest)
            #expect(error?.message.contains("4111111111111111") == false)
            #expect(try await harness.simulator.records().isEmpty)
            #expect(try await Self.heldCVVs(harness.vault) == 1)
            let audited = try await harness.auditRecords().map(\.event).filter { $0.purpose == "authorization" }
            #expect(audited.count == 1)
            #expect(audited.first?.outcome == .denied)
            let rendered = audited.map { "\($0.actor) \($0.reference ?? "-") \($0.detail ?? "-")" }.joined()
            #expect(!rendered.contains("4111111111111111") && !rendered.contains("4242424242424242"))
        }
    }

    @Test func aMalformedTokenIsInvalidAndNotEchoed() async throws {
        try await withGateway { harness in
            let error = await authorizationError {
                try await harness.gateway().authorize(Self.request(Token(unchecked: "4111111111111111")))
            }
            #expect(error?.code == .invalidRequest)
            let events = try await harness.auditRecords().map(\.event).filter { $0.purpose == "authorization" }
            #expect(events.first?.objects == [])
        }
    }

    @Test func aFailingAuditLogSendsNothing() async throws {
        try await withGateway { harness in
            let token = try await harness.tokenize(.visa.with(cvv: "737"))
            let audit = FailingAuditLog()
            let error = await authorizationError {
                try await harness.gateway(audit: audit).authorize(Self.request(token))
            }
            #expect(error?.code == .internalFailure)
            #expect(error?.isRetryable == false)
            #expect(audit.attempts >= 1)
            #expect(try await harness.simulator.records().isEmpty, "nothing reached the acquirer")
            #expect(try await Self.heldCVVs(harness.vault) == 1, "the CVV was not taken")
        }
    }

    @Test func noPANOrCVVInLogsOrAudit() async throws {
        try await withGateway(configuration: .init(slowDelay: .seconds(1))) { harness in
            let cards: [TestCard] = [
                .visa.with(cvv: "737"), .visa2.with(cvv: "123"), .mastercard, .amex.with(cvv: "7373"), .declined,
                .insufficientFunds,
            ]
            let gateway = try harness.gateway(timeout: .milliseconds(300))
            for (index, card) in cards.enumerated() {
                let token = try await harness.tokenize(card)
                for amount in [Int64(100), AcquirerConfiguration.unavailableAmount, AcquirerConfiguration.slowAmount] {
                    _ = try? await gateway.authorize(
                        Self.request(token, amount: amount, reference: "leak-\(index)-\(amount)"))
                }
            }
            let logs = harness.renderedLogs
            #expect(logs.contains("card authorization"), "the gateway logged")
            let audit = try await harness.auditRecords().map { "\($0.event)" }.joined(separator: "\n")
            for card in cards {
                for form in [card.pan, String(card.pan.dropFirst(6)), String(card.pan.dropLast(4))] {
                    #expect(!logs.contains(form), "a PAN in the logs")
                    #expect(!audit.contains(form), "a PAN in the audit log")
                }
            }
            for entry in harness.logs.entries {
                for (key, value) in entry.metadata where !key.hasSuffix("_ms") {
                    #expect(!["737", "123", "7373"].contains("\(value)"), "a CVV in log metadata \(key)")
                }
            }
        }
    }
}
