import Audit
import CDETestSupport
import CardIssuing
import CardTokens
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Issuing
import Ledger
import NIOCore
import Testing
import TokenVault
import VaultServer
import VaultTestSupport
import Wallet

/// The cardholder's reveal of an issued card (`POST /v1/detokenize`, purpose `cardholder_reveal`):
/// PAN, expiry and the CVV derived at that moment, audited; then the card data revealed is what
/// the network authorizes.
@Suite("Cardholder reveal of issued cards", .timeLimit(.minutes(2)))
struct CardholderRevealTests {
    static func expectWalletDatabase(in directory: String, holdsNeither pan: String, _ cvv: String) {
        #expect(FileManager.default.fileExists(atPath: directory + "/wallet.db"))
        for name in ["wallet.db", "wallet.db-wal"] {
            guard let bytes = FileManager.default.contents(atPath: directory + "/" + name) else { continue }
            let text = String(decoding: bytes, as: UTF8.self)
            #expect(!text.contains(pan), "the PAN is in \(name)")
            #expect(!text.contains("\"cvv\":\"\(cvv)\""), "the CVV is in \(name)")
        }
    }

    @Test("cardholder_reveal with reveal pan gives an issued card's CVV, audited; no other purpose or level does")
    func revealThenSpend() async throws {
        try await withFreshVault("cardholder-reveal") { fresh in
            let vault = fresh.vault
            let (issuer, side, _, card) = try await NetworkRouteTests.activeCard(fresh)
            let outside = try await vault.tokens.tokenize(TestCard(pan: "4242424242424242").request(), by: .system)
            let expectedCVV = try await issuer.withCVV(of: card.token, tenant: Principal.defaultTenant) {
                String(decoding: $0, as: UTF8.self)
            }

            let (holder, holderKey) = try await vault.credentials.create(
                name: "cardholder-app", scopes: [.detokenize], purposes: ["cardholder_reveal:cvv", "settlement:pan"])
            let (_, maskedKey) = try await vault.credentials.create(
                name: "support", scopes: [.detokenize], purposes: ["cardholder_reveal"])
            let (_, panOnlyKey) = try await vault.credentials.create(
                name: "support-full", scopes: [.detokenize], purposes: ["cardholder_reveal:pan"])
            let (_, settlementKey) = try await vault.credentials.create(
                name: "settlement", scopes: [.detokenize], purposes: ["settlement:pan"])
            let (_, networkKey) = try await vault.credentials.create(name: "network", scopes: [.network], purposes: [])

            let detokenize = Application(
                router: VaultApplication.detokenizeRouter(vault: vault, rateLimit: nil, logger: fresh.logger),
                logger: fresh.logger)
            let tokens = [card.token.rawValue, outside.metadata.token.rawValue]
            let revealed: (pan: String, cvv: String) = try await detokenize.test(.router) { client in
                func reveal(
                    _ key: String, purpose: String, reveal: String
                ) async throws -> (HTTPResponse.Status, [[String: Any]]) {
                    let body: [String: Any] = [
                        "tokens": tokens, "purpose": purpose, "reference": "app:session-1", "reveal": reveal,
                    ]
                    return try await client.execute(
                        uri: "/v1/detokenize", method: .post,
                        headers: [.authorization: "Bearer \(key)", .contentType: "application/json"],
                        body: ByteBuffer(bytes: try JSONCoding.data(body))
                    ) { response in
                        let object = (try? JSONCoding.object(String(buffer: response.body))) ?? [:]
                        return (response.status, object["results"] as? [[String: Any]] ?? [])
                    }
                }
                let (status, results) = try await reveal(holderKey, purpose: "cardholder_reveal", reveal: "pan")
                #expect(status == .ok && results.count == 2)
                let issued = results[0]
                let pan = try #require(issued["pan"] as? String)
                #expect(pan.hasPrefix("999999") && pan.hasSuffix(card.last4) && TestLuhn.passes(pan))
                #expect(issued["cvv"] as? String == expectedCVV)
                #expect(issued["exp_month"] as? Int == card.expMonth && issued["exp_year"] as? Int == card.expYear)
                #expect(results[1]["pan"] as? String == "4242424242424242")
                #expect(results[1]["cvv"] == nil, "a card tokenized from outside has no CVV to derive")

                // A full reveal under another purpose, or a masked one, carries no CVV.
                let (_, settled) = try await reveal(holderKey, purpose: "settlement", reveal: "pan")
                #expect(settled[0]["pan"] as? String == pan && settled[0]["cvv"] == nil)
                let (_, panOnly) = try await reveal(panOnlyKey, purpose: "cardholder_reveal", reveal: "pan")
                #expect(panOnly[0]["pan"] as? String == pan && panOnly[0]["cvv"] == nil, "a CVV needs the :cvv grant")
                let (_, masked) = try await reveal(maskedKey, purpose: "cardholder_reveal", reveal: "masked")
                #expect(masked[0]["masked_pan"] != nil && masked[0]["cvv"] == nil && masked[0]["pan"] == nil)
                // A key without the purpose is refused, as any reveal is; masked-only keys too.
                let (refused, _) = try await reveal(settlementKey, purpose: "cardholder_reveal", reveal: "pan")
                #expect(refused == .forbidden)
                let (maskedOnly, _) = try await reveal(maskedKey, purpose: "cardholder_reveal", reveal: "pan")
                #expect(maskedOnly == .forbidden)
                return (pan, try #require(issued["cvv"] as? String))
            }

            // Audited before the reveal, with the count of CVVs derived; refusals too.
            let records = try await vault.audit.records().map(\.event).filter { $0.type == "detokenize" }
            let granted = try #require(records.first { $0.actor == holder.id && $0.purpose == "cardholder_reveal" })
            #expect(granted.outcome == .success && granted.objects == tokens)
            #expect(granted.detail?.contains("reveal=pan") == true && granted.detail?.contains("cvvs=1") == true)
            #expect(records.filter { $0.outcome == .denied && $0.purpose == "cardholder_reveal" }.count == 2)
            let logged = fresh.logs.entries.map(TestLog.rendered).joined(separator: "\n")
            #expect(!logged.contains(revealed.pan), "no PAN in the logs")

            // What the cardholder sees is what the network authorizes.
            let network = Application(
                router: VaultApplication.networkRouter(vault: vault, issuer: issuer, network: side.network),
                logger: fresh.logger)
            try await network.test(.router) { client in
                let body: [String: Any] = [
                    "network_reference": "n-1", "pan": revealed.pan, "exp_month": card.expMonth,
                    "exp_year": card.expYear, "cvv": revealed.cvv, "amount": 1_250, "currency": "EUR",
                    "merchant": ["id": "m-1", "name": "Corner shop", "mcc": "5411", "country": "DE"],
                ]
                let approved = try await client.execute(
                    uri: "/v1/network/authorizations", method: .post,
                    headers: [.authorization: "Bearer \(networkKey)", .contentType: "application/json"],
                    body: ByteBuffer(bytes: try JSONCoding.data(body))
                ) { try JSONCoding.object(String(buffer: $0.body))["approved"] as? Bool }
                #expect(approved == true)
            }
            // The network sent the PAN and CVV; wallet.db (and its WAL) kept neither.
            Self.expectWalletDatabase(in: fresh.paths.dataDirectory, holdsNeither: revealed.pan, revealed.cvv)
        }
    }
}
