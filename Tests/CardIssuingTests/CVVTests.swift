import Audit
import CDETestSupport
import CardTokens
import Foundation
import Testing
import VaultCrypto
import VaultTestSupport

@testable import CardIssuing
@testable import TokenVault

@Suite("Card issuing: the derived CVV")
struct CVVTests {
    /// The vectors' CVK, 80 81 … 9f (docs/CRYPTO.md §21; Tests/Interop/decrypt_record.py checks them too).
    static let vectorKey = Array(UInt8(0x80)...UInt8(0x9f))

    @Test(
        "known-answer vectors of CRYPTO.md §21",
        arguments: [
            ("9999991234567893", 12, 2029, "447"), ("9999991234567893", 1, 2030, "245"),
            ("9999990000000089", 2, 2027, "054"), ("9999999876543210124", 7, 2031, "579"),
        ])
    func knownAnswers(pan: String, month: Int, year: Int, cvv: String) {
        let key = Self.vectorKey.withUnsafeBytes { SecretBytes(copying: $0) }
        var output = [UInt8](repeating: 0, count: CardVerificationValue.digitCount)
        Array(pan.utf8).withUnsafeBufferPointer { digits in
            output.withUnsafeMutableBufferPointer { out in
                CardVerificationValue.derive(panDigits: digits, expMonth: month, expYear: year, key: key, into: out)
            }
        }
        #expect(String(decoding: output, as: UTF8.self) == cvv)
    }

    @Test("a card's CVV survives data-key and root rotations, rewraps, a master-key rotation and a reopen")
    func stableAcrossRotations() async throws {
        try await withFreshVault("issue-cvv-stable") { fresh in
            let issuer = try fresh.issuer()
            let card = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
            let cvv = try await issuer.cvv(of: card.token)
            _ = try await fresh.vault.keys.rotate()
            _ = try await fresh.vault.keys.rewrap()
            #expect(try await issuer.cvv(of: card.token) == cvv)
            _ = try await fresh.vault.keys.rotateRoot()
            _ = try await fresh.vault.keys.rewrap()
            #expect(try await issuer.cvv(of: card.token) == cvv)
            // A card issued after the rotations keeps the same key version: it is pinned per card.
            let later = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
            #expect(try await fresh.vault.integer("SELECT count(DISTINCT cvk_version) FROM cards") == 1)
            let newKey = fresh.root + "/new-master.key"
            try Bytes.write(Bytes.random(32), to: newKey)
            try await fresh.vault.rotateMaster(newKeyPath: newKey)
            let rotation = try #require(try await fresh.auditRecords().last { $0.event.type == "keys.rotate_master" })
            #expect(rotation.event.objects.last == "cvk:1", "the CVK is re-wrapped with the other keys")
            // Another process: it unwraps the key afresh under the new master key.
            let reopened = try await Vault.open(paths: fresh.paths, logger: fresh.logger)
            let other = VaultCardIssuer(
                tokens: reopened.tokens, numbers: try CardNumberGenerator(bin: VaultCardIssuer.defaultBIN),
                logger: fresh.logger, clock: { Date() })
            #expect(try await other.cvv(of: card.token) == cvv)
            #expect(try await other.cvv(of: later.token) == issuer.cvv(of: later.token))
        }
    }

    @Test("the CVV is the construction over the stored PAN and expiry under the card's key")
    func matchesConstruction() async throws {
        try await withFreshVault("issue-cvv-construction") { fresh in
            let issuer = try fresh.issuer()
            let card = try await issuer.issueCard(IssueCardRequest(), by: issuingPrincipal, origin: "test")
            let key = try await fresh.vault.tokens.cardVerificationKey(version: 1)
            let pan = try await fresh.vault.pan(of: card.token)
            var output = [UInt8](repeating: 0, count: 3)
            Array(pan.utf8).withUnsafeBufferPointer { digits in
                output.withUnsafeMutableBufferPointer { out in
                    CardVerificationValue.derive(
                        panDigits: digits, expMonth: card.expMonth, expYear: card.expYear, key: key, into: out)
                }
            }
            #expect(try await issuer.cvv(of: card.token) == String(decoding: output, as: UTF8.self))
        }
    }
}
