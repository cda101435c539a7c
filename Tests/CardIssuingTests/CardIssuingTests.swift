import Audit
import CDETestSupport
import CardTokens
import Foundation
import GRDB
import Testing
import VaultCrypto
import VaultTestSupport

@testable import CardIssuing
@testable import TokenVault

@Suite("Card issuing: numbers, expiry, configuration, audit")
struct CardIssuingTests {
    @Test(
        "issued PANs start with the BIN, have the configured length, pass Luhn, and belong to the principal",
        arguments: [("999999", 16), ("99999912", 16), ("999999", 19), ("99999912", 17)])
    func numbers(bin: String, length: Int) async throws {
        try await withFreshVault("issue-numbers") { fresh in
            let issuer = try fresh.issuer(bin: bin, length: length)
            #expect(issuer.issuingBIN == bin && issuer.panLength == length)
            for _ in 0..<20 {
                let metadata = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
                let pan = try await fresh.vault.pan(of: metadata.token)
                #expect(pan.hasPrefix(bin) && pan.count == length && TestLuhn.passes(pan))
                #expect(metadata.bin == String(pan.prefix(6)) && metadata.last4 == String(pan.suffix(4)))
                #expect(metadata.brand == .unknown && metadata.format == .opaque)
                let stored = try #require(try await fresh.vault.store.card(metadata.token, now: Date()))
                #expect(stored.tenant == "acme" && stored.createdBy == issuingPrincipal.name && stored.cvkVersion == 1)
                // The principal's own view: its tenant finds the token, another does not.
                _ = try await fresh.vault.tokens.metadata(of: metadata.token, for: issuingPrincipal)
                await #expect(throws: VaultError.self) { try await fresh.vault.tokens.metadata(of: metadata.token) }
            }
        }
    }

    @Test("a numeric token keeps the issued card's BIN and last four")
    func numericFormat() async throws {
        try await withFreshVault("issue-numeric") { fresh in
            let metadata = try await fresh.issuer().issueCard(
                IssueCardRequest(format: .numeric), by: issuingPrincipal, origin: "test")
            let pan = try await fresh.vault.pan(of: metadata.token)
            #expect(metadata.format == .numeric && metadata.token.rawValue != pan)
            #expect(metadata.token.rawValue.hasPrefix(String(pan.prefix(6))))
            #expect(metadata.token.rawValue.hasSuffix(String(pan.suffix(4))))
        }
    }

    @Test(
        "a BIN that is not 6 or 8 digits, or a length outside 16…19, is refused",
        arguments: [
            ("99999", 16), ("9999999", 16), ("999999999", 16), ("99999a", 16), ("", 16), ("999999", 15),
            ("999999", 20),
        ])
    func badConfiguration(bin: String, length: Int) throws {
        #expect(throws: VaultError.self) { try VaultCardIssuer.checkConfiguration(bin: bin, panLength: length) }
        do {
            _ = try CardNumberGenerator(bin: bin, length: length)
            Issue.record("accepted")
        } catch let error as VaultError {
            #expect(error.code == .invalidArgument)
        }
    }

    @Test("the default BIN belongs to no network: brand detection says unknown")
    func defaultBIN() {
        #expect(CardBrand(panDigits: Array(VaultCardIssuer.defaultBIN.utf8)) == .unknown)
        #expect(VaultCardIssuer.defaultPANLength == 16)
    }

    @Test("expires_in_months outside 1…60 is invalid_argument, and nothing is written", arguments: [0, 61, -1])
    func expiryOutOfRange(months: Int) async throws {
        try await withFreshVault("issue-expiry-range") { fresh in
            do {
                _ = try await fresh.issuer().issueCard(
                    IssueCardRequest(expiresInMonths: months), by: issuingPrincipal, origin: "test")
                Issue.record("issued")
            } catch let error as VaultError {
                #expect(error.code == .invalidArgument)
            }
            #expect(try await fresh.vault.integer("SELECT count(*) FROM cards") == 0)
        }
    }

    static let utc: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    static func date(_ year: Int, _ month: Int, _ day: Int, _ hour: Int = 12, _ minute: Int = 0) -> Date {
        utc.date(from: DateComponents(year: year, month: month, day: day, hour: hour, minute: minute))!
    }

    @Test(
        "the expiry is the month expires_in_months after the current one (UTC), across year ends",
        arguments: [
            (date(2026, 12, 15), 1, 1, 2027), (date(2026, 12, 31, 23, 59), 1, 1, 2027),
            (date(2026, 12, 1, 0, 0), 12, 12, 2027), (date(2026, 1, 31, 23, 59), 1, 2, 2026),
            (date(2026, 12, 15), 60, 12, 2031), (date(2026, 1, 1, 0, 0), 60, 1, 2031), (date(2026, 6, 30), 36, 6, 2029),
            (date(2026, 11, 30), 2, 1, 2027),
        ])
    func expiry(now: Date, months: Int, month: Int, year: Int) async throws {
        #expect(VaultCardIssuer.expiry(monthsAfter: months, now: now) == (month, year))
        try await withFreshVault("issue-expiry") { fresh in
            let clock = ManualClock(now)
            let metadata = try await fresh.issuer(clock: clock.function).issueCard(
                IssueCardRequest(expiresInMonths: months), by: issuingPrincipal, origin: "test")
            #expect(metadata.expMonth == month && metadata.expYear == year)
        }
    }

    @Test("an issue is audited as card.issue with the token and tenant, and no PAN in the log or the logs")
    func audited() async throws {
        try await withFreshVault("issue-audit") { fresh in
            let issuer = try fresh.issuer()
            let (metadata, records) = try await fresh.newAuditRecords {
                try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "10.0.0.9")
            }
            let issue = try #require(records.first { $0.event.type == "card.issue" })
            #expect(issue.event.actor == "issuer0000000001" && issue.event.origin == "10.0.0.9")
            #expect(issue.event.outcome == .success)
            #expect(issue.event.objects == [metadata.token.rawValue, "tenant:acme"])
            // The first issue creates the card-verification key, audited in its own transaction.
            #expect(records.map(\.event.type) == ["keys.create_cvk", "card.issue"])
            _ = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "10.0.0.9")
            let audit = try await fresh.renderedAudit()
            #expect(audit.components(separatedBy: "keys.create_cvk").count == 2, "one key, created once")
            let pan = try await fresh.vault.pan(of: metadata.token)
            let cvv = try await issuer.cvv(of: metadata.token)
            #expect(!audit.contains(pan) && !fresh.renderedLogs.contains(pan))
            #expect(!fresh.renderedLogs.contains("cvv=\(cvv)"))
            #expect(!"\(metadata)".contains(pan))
        }
    }

    @Test("no cvvs row is written; the cards row records the CVK version; outside cards have none")
    func cvvNotStored() async throws {
        try await withFreshVault("issue-no-cvv") { fresh in
            let issuer = try fresh.issuer()
            let issued = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
            let outside = try await fresh.vault.tokens.tokenize(
                TestCard(pan: "4111111111111111").request(), by: issuingPrincipal)
            #expect(try await fresh.vault.integer("SELECT count(*) FROM cvvs") == 0)
            #expect(
                try await fresh.vault.integer(
                    "SELECT cvk_version FROM cards WHERE token = ?", [issued.token.rawValue]) == 1)
            #expect(
                try await fresh.vault.integer(
                    "SELECT count(*) FROM cards WHERE token = ? AND cvk_version IS NULL",
                    [outside.metadata.token.rawValue]) == 1)
            #expect(issued.cvvExpiresAt == nil)
            // The CVV is derived, 3 digits, and only for an issued card of the caller's tenant.
            let cvv = try await issuer.cvv(of: issued.token)
            #expect(cvv.count == 3 && cvv.allSatisfy(\.isNumber))
            for (token, tenant) in [(outside.metadata.token, "acme"), (issued.token, "default")] {
                do {
                    _ = try await issuer.cvv(of: token, tenant: tenant)
                    Issue.record("a CVV for a card that is not an issued card of the tenant")
                } catch let error as VaultError {
                    #expect(error.code == .tokenNotFound)
                }
            }
        }
    }

    @Test("a card-verification key row edited without the key is refused")
    func cvkRowMAC() async throws {
        try await withFreshVault("issue-cvk-mac") { fresh in
            let issuer = try fresh.issuer()
            let card = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
            try await fresh.vault.database.pool.write { db in
                try db.execute(sql: "UPDATE card_verification_keys SET created_at_ms = created_at_ms + 1")
            }
            let reopened = try await Vault.open(paths: fresh.paths, logger: fresh.logger)
            let other = VaultCardIssuer(
                tokens: reopened.tokens, numbers: try CardNumberGenerator(bin: VaultCardIssuer.defaultBIN),
                logger: fresh.logger, clock: { Date() })
            for attempt in [
                { _ = try await other.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test") },
                { _ = try await other.cvv(of: card.token) },
            ] {
                do {
                    try await attempt()
                    Issue.record("an edited key row was used")
                } catch let error as VaultError {
                    #expect(error.code == .recordCorrupt)
                }
            }
        }
    }
}
