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
import Logging
import NIOCore
import Testing
import TokenVault
import VaultServer
import VaultTestSupport
import Wallet

/// The card network's listener over a vault that really issues the cards: PAN in, the CDE's
/// checks, the wallet side's decision, a hold, clearing; no PAN or CVV in any answer or log.
@Suite("Card network routes", .timeLimit(.minutes(2)))
struct NetworkRouteTests {
    /// The PAN and CVV of an issued card, read inside the CDE (the test plays the network,
    /// which knows them).
    static func cardData(
        _ issuer: VaultCardIssuer, _ vault: Vault, _ token: Token
    ) async throws -> (
        pan: String, cvv: String
    ) {
        let pan = try await vault.tokens.withIssuedCard(token, tenant: Principal.defaultTenant) { card, _ in
            String(decoding: card.panDigits, as: UTF8.self)
        }
        let cvv = try await issuer.withCVV(of: token, tenant: Principal.defaultTenant) {
            String(decoding: $0, as: UTF8.self)
        }
        return (pan, cvv)
    }

    /// The vault's issuer and wallet side, a wallet funded with €100.00, and an active card on it.
    static func activeCard(
        _ fresh: FreshVault
    ) async throws -> (VaultCardIssuer, WalletSide, WalletSummary, VirtualCard) {
        let issuer = try VaultCardIssuer(tokens: fresh.vault.tokens, logger: fresh.logger)
        let side = try VaultApplication.walletSide(vault: fresh.vault, authorizer: nil, issuer: issuer)
        let wallet = try await side.wallets.createWallet(
            ownerRef: "alice", currency: "EUR", idempotency: try IdempotencyKey(owner: "o", key: "w"))
        _ = try await side.wallets.ledger.createTransfers([
            TransferRequest(
                id: "fund", debitAccountID: WalletService.receivableAccountID(try Currency("EUR")),
                creditAccountID: wallet.id, amount: 10_000)
        ])
        let card = try await side.virtualCards.issue(
            to: wallet.id, NewVirtualCard(activate: true), idempotency: try IdempotencyKey(owner: "o", key: "c"))
        return (issuer, side, wallet, card)
    }

    @Test("An issued card is authorized by PAN, declined for a wrong CVV or expiry, cleared; nothing leaks")
    func authorizeAndClear() async throws {
        try await withFreshVault("network-routes") { fresh in
            let vault = fresh.vault
            let (issuer, side, wallet, card) = try await NetworkRouteTests.activeCard(fresh)
            let (pan, cvv) = try await Self.cardData(issuer, vault, card.token)
            #expect(pan.hasPrefix("999999") && pan.count == 16 && TestLuhn.passes(pan))
            let (_, key) = try await vault.credentials.create(name: "network", scopes: [.network], purposes: [])
            let (_, walletKey) = try await vault.credentials.create(name: "wallet", scopes: [.wallet], purposes: [])
            let app = Application(
                router: VaultApplication.networkRouter(vault: vault, issuer: issuer, network: side.network),
                logger: fresh.logger)
            try await app.test(.router) { client in
                let networkKey = key
                func post(
                    _ path: String, _ json: [String: Any], auth: String? = nil
                ) async throws -> (
                    HTTPResponse.Status, [String: Any], String
                ) {
                    try await client.execute(
                        uri: path, method: .post,
                        headers: [.authorization: "Bearer \(auth ?? networkKey)", .contentType: "application/json"],
                        body: ByteBuffer(bytes: try JSONCoding.data(json))
                    ) { response in
                        let text = String(buffer: response.body)
                        return (response.status, (try? JSONCoding.object(text)) ?? [:], text)
                    }
                }
                let merchant: [String: Any] = ["id": "m-1", "name": "Corner shop", "mcc": "5411", "country": "DE"]
                func authorization(_ reference: String, cvv: String?, expMonth: Int? = nil) -> [String: Any] {
                    var body: [String: Any] = [
                        "network_reference": reference, "pan": pan, "exp_month": expMonth ?? card.expMonth,
                        "exp_year": card.expYear, "amount": 2_500, "currency": "EUR", "merchant": merchant,
                    ]
                    if let cvv { body["cvv"] = cvv }
                    return body
                }
                var answers = [String]()

                let wrongCVV = String(format: "%03d", (Int(cvv)! + 1) % 1000)
                let (status1, declined, text1) = try await post(
                    "/v1/network/authorizations", authorization("n-1", cvv: wrongCVV))
                answers.append(text1)
                #expect(status1 == .ok)
                #expect(
                    declined["approved"] as? Bool == false && declined["decline_code"] as? String == "incorrect_cvv")

                let (_, expired, text2) = try await post(
                    "/v1/network/authorizations", authorization("n-2", cvv: cvv, expMonth: card.expMonth % 12 + 1))
                answers.append(text2)
                #expect(
                    expired["decline_code"] as? String == "incorrect_cvv",
                    "a wrong expiry answers as a wrong CVV does: the two cannot be guessed apart")

                var unknownPAN = authorization("n-3", cvv: cvv)
                unknownPAN["pan"] = "4111111111111111"
                let (_, unknown, text3) = try await post("/v1/network/authorizations", unknownPAN)
                answers.append(text3)
                #expect(unknown["decline_code"] as? String == "card_not_found")

                let (status4, approved, text4) = try await post(
                    "/v1/network/authorizations", authorization("n-4", cvv: cvv))
                answers.append(text4)
                #expect(status4 == .ok)
                #expect(approved["approved"] as? Bool == true)
                let authorizationID = try #require(approved["id"] as? String)
                let (_, replay, _) = try await post("/v1/network/authorizations", authorization("n-4", cvv: cvv))
                #expect(replay["id"] as? String == authorizationID)
                // A stored reference answers the same whatever card data comes with it: no 409 (or
                // approval) tells a prober that the new PAN, expiry or CVV is right.
                let (probeStatus, probe, _) = try await post(
                    "/v1/network/authorizations", authorization("n-1", cvv: cvv))
                #expect(probeStatus == .ok && probe["decline_code"] as? String == "incorrect_cvv")
                let (_, wrongReplay, _) = try await post(
                    "/v1/network/authorizations", authorization("n-4", cvv: wrongCVV))
                #expect(wrongReplay["id"] as? String == authorizationID && wrongReplay["approved"] as? Bool == true)
                var otherAmount = authorization("n-4", cvv: cvv)
                otherAmount["amount"] = 2_600
                let (reusedStatus, _, _) = try await post("/v1/network/authorizations", otherAmount)
                #expect(reusedStatus == .conflict, "the same reference with another amount")

                let (status5, cleared, text5) = try await post(
                    "/v1/network/clearings",
                    ["network_reference": "n-5", "authorization_id": authorizationID, "amount": 2_000])
                answers.append(text5)
                #expect(status5 == .ok && cleared["type"] as? String == "clearing")
                let (status6, _, _) = try await post(
                    "/v1/network/clearings",
                    ["network_reference": "n-6", "authorization_id": authorizationID, "amount": 600])
                #expect(status6 == .unprocessableContent)
                var noCVV = authorization("n-no-cvv", cvv: nil)
                noCVV["network_reference"] = "n-no-cvv"
                let (noCVVStatus, noCVVBody, _) = try await post("/v1/network/authorizations", noCVV)
                #expect(noCVVStatus == .badRequest, "a CVV is required")
                #expect((noCVVBody["error"] as? [String: Any])?["code"] as? String == "missing_field")
                for malformed in ["", "12", "12345", "1a3"] {
                    let (status, body, _) = try await post(
                        "/v1/network/authorizations", authorization("n-cvv-\(malformed)", cvv: malformed))
                    #expect(status == .badRequest, "cvv \(malformed.count) characters")
                    #expect((body["error"] as? [String: Any])?["code"] as? String == "invalid_cvv")
                }
                for (field, value, code) in [
                    ("exp_year", 10_000, "invalid_exp_year"), ("exp_year", 1999, "invalid_exp_year"),
                    ("exp_month", 13, "invalid_exp_month"),
                ] {
                    // Also with a PAN that is no card (it would be declined): the malformed field wins.
                    var body = authorization("n-\(field)-\(value)", cvv: cvv)
                    body[field] = value
                    body["pan"] = "9999990000000000"
                    let (status, reply, _) = try await post("/v1/network/authorizations", body)
                    #expect(status == .badRequest, "\(field) \(value)")
                    #expect((reply["error"] as? [String: Any])?["code"] as? String == code)
                }
                let (status7, _, _) = try await post(
                    "/v1/network/authorizations", authorization("n-7", cvv: cvv), auth: walletKey)
                #expect(status7 == .forbidden, "the network scope is needed")

                let balances = try #require(try await side.wallets.ledger.account(wallet.id)).balances
                #expect(balances.posted == 8_000 && balances.debitsPending == 500 && balances.available == 7_500)
                for answer in answers {
                    #expect(!answer.contains(pan) && !answer.contains("\"\(cvv)\""), "no PAN or CVV in \(answer)")
                }
            }
            let logged = fresh.logs.entries.map(TestLog.rendered).joined(separator: "\n")
            #expect(!logged.contains(pan), "no PAN in the logs")
            let history = try await side.network.transactions(of: card.id)
            #expect(history.map(\.kind) == [.authorization, .authorization, .authorization, .clearing])
        }
    }
}
