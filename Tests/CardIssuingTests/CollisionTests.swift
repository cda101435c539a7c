import CDETestSupport
import CardTokens
import Foundation
import InMemoryLogging
import Logging
import Testing
import VaultCrypto
import VaultTestSupport

@testable import CardIssuing
@testable import TokenVault

@Suite("Card issuing: an issued PAN equals no card in the vault")
struct CollisionTests {
    /// Digits 0, 1 or 2 only: with the default BIN and length, 3⁹ = 19,683 card numbers, so
    /// thousands of issues meet taken numbers often.
    static let tinyDigits: CardNumberGenerator.DigitSource = { UInt8(SecureRandom.uniform(3)) }

    /// A card number of the tiny space, from the test's own generator.
    static func tinySpacePAN(using generator: inout SeededGenerator) -> String {
        let body =
            VaultCardIssuer.defaultBIN
            + String((0..<9).map { _ in Character("\(Int.random(in: 0...2, using: &generator))") })
        return TestLuhn.completing(body)
    }

    @Test(
        "thousands of issues in a tiny number space never collide, with cards tokenized from outside under an older root"
    )
    func neverCollides() async throws {
        var generator = SeededGenerator()
        let seed = generator.seed
        try await withFreshVault("issue-collisions", logLevel: .debug) { fresh in
            // Cards of the same space tokenized from outside: several tenants, creators, formats.
            let principals = [
                Principal.system, .apiKey("frontend00000001", tenant: "acme"),
                .apiKey("frontend00000002", tenant: "zeta"),
            ]
            var outside = Set<String>()
            for index in 0..<400 {
                let pan = Self.tinySpacePAN(using: &generator)
                guard outside.insert(pan).inserted else { continue }
                _ = try await fresh.vault.tokens.tokenize(
                    TestCard(pan: pan, expMonth: 1, expYear: 2035).request(format: index % 2 == 0 ? .opaque : .numeric),
                    by: principals[index % principals.count])
            }
            // Their fingerprints stay under root version 0 (no rewrap): issuing must look there too.
            _ = try await fresh.vault.keys.rotateRoot()
            let issuer = try fresh.issuer(digits: Self.tinyDigits, maximumAttempts: 200)
            let issued = try await withThrowingTaskGroup(of: [Token].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var tokens = [Token]()
                        for _ in 0..<300 {
                            tokens.append(
                                try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
                                    .token)
                        }
                        return tokens
                    }
                }
                return try await group.reduce(into: [Token]()) { $0 += $1 }
            }
            #expect(issued.count == 2400)
            var issuedPANs = Set<String>()
            for token in issued { issuedPANs.insert(try await fresh.vault.pan(of: token)) }
            #expect(issuedPANs.count == issued.count, "two issued cards share a PAN (seed \(seed))")
            #expect(issuedPANs.isDisjoint(with: outside), "an issued card equals an outside card (seed \(seed))")
            #expect(try await fresh.vault.integer("SELECT count(*) FROM cards WHERE fingerprint_version = 0") ?? 0 > 0)
            // The space was small enough for draws to meet stored cards, and each was drawn again.
            let redraws = fresh.logs.entries.count { $0.message == VaultCardIssuer.takenNumberMessage }
            #expect(redraws > 0, "no draw met a stored card: the test did not exercise the check")
        }
    }

    @Test("when every draw meets a stored card, the issue fails with a clear error and writes nothing")
    func attemptsExhausted() async throws {
        try await withFreshVault("issue-exhausted") { fresh in
            // One card number only: 999999 000000000 and its check digit.
            let issuer = try fresh.issuer(digits: { 0 }, maximumAttempts: 5)
            let first = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
            let pan = try await fresh.vault.pan(of: first.token)
            #expect(pan == TestLuhn.completing("999999000000000"))
            for principal in [issuingPrincipal, Principal.system] {
                do {
                    _ = try await issuer.issueCard(IssueCardRequest(), by: principal, origin: "test")
                    Issue.record("issued a PAN the vault holds")
                } catch let error as VaultError {
                    #expect(error.code == .panSpaceExhausted)
                    #expect(!error.message.contains(pan) && !"\(error)".contains(pan))
                }
            }
            #expect(try await fresh.vault.integer("SELECT count(*) FROM cards") == 1)
            #expect(!fresh.renderedLogs.contains(pan))
        }
    }

    @Test("an issued card's number is never issued again after its token is deleted; an outside card's may be")
    func deletedIssuedCardRetiresItsNumber() async throws {
        try await withFreshVault("issue-deleted") { fresh in
            let issuer = try fresh.issuer(digits: { 0 }, maximumAttempts: 3)
            let first = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
            try await fresh.vault.tokens.delete(first.token, by: issuingPrincipal)
            do {
                _ = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
                Issue.record("issued again the PAN of a deleted issued card")
            } catch let error as VaultError {
                #expect(error.code == .panSpaceExhausted)
            }
            #expect(try await fresh.vault.integer("SELECT count(*) FROM retired_issued_pans") == 1)
            // Still after a root rotation and a rewrap: the retired fingerprint stays under the
            // old root version, and issuing checks every version.
            _ = try await fresh.vault.keys.rotateRoot()
            _ = try await fresh.vault.keys.rewrap()
            do {
                _ = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
                Issue.record("issued again, after a root rotation, the PAN of a deleted issued card")
            } catch let error as VaultError {
                #expect(error.code == .panSpaceExhausted)
            }

            // A card tokenized from outside and deleted leaves no trace: its number is not ours.
            let outsideIssuer = try fresh.issuer(digits: { 1 }, maximumAttempts: 3)
            let outside = try await fresh.vault.tokens.tokenize(
                TestCard(pan: TestLuhn.completing("999999111111111")).request(format: .opaque), by: issuingPrincipal)
            try await fresh.vault.tokens.delete(outside.metadata.token, by: issuingPrincipal)
            #expect(try await fresh.vault.integer("SELECT count(*) FROM retired_issued_pans") == 1)
            let reissued = try await outsideIssuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
            #expect(try await fresh.vault.pan(of: reissued.token) == TestLuhn.completing("999999111111111"))
        }
    }

    @Test("a number tokenized from outside, by another tenant, is never issued")
    func outsideCardBlocks() async throws {
        try await withFreshVault("issue-outside") { fresh in
            let pan = TestLuhn.completing("999999000000000")
            _ = try await fresh.vault.tokens.tokenize(
                TestCard(pan: pan).request(format: .numeric), by: .apiKey("frontend00000009", tenant: "other"))
            let issuer = try fresh.issuer(digits: { 0 }, maximumAttempts: 3)
            do {
                _ = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
                Issue.record("issued a PAN the vault holds")
            } catch let error as VaultError {
                #expect(error.code == .panSpaceExhausted)
            }
            #expect(try await fresh.vault.integer("SELECT count(*) FROM cards WHERE cvk_version IS NOT NULL") == 0)
        }
    }
}
