import CardTokens
import Foundation
import HTTPTypes
import NIOCore
import Synchronization
import Testing
import TokenVault
import VaultTestSupport

/// Stands in for the vault's card issuing in the route tests: a new token per card, under BIN
/// 999999. (The vault's own issuer is tested with the vault.)
private final class StubIssuer: CardIssuer {
    let issuingBIN = "999999"
    private let counter = Atomic<Int>(0)

    func issueCard(_ request: IssueCardRequest, by principal: Principal, origin: String) async throws -> CardMetadata {
        let number = counter.add(1, ordering: .relaxed).newValue
        return CardMetadata(
            token: Token(
                unchecked: Token.opaquePrefix + "stub" + String(repeating: "0", count: 20)
                    + String(format: "%06d", number)),
            format: .opaque, bin: issuingBIN, last4: String(format: "%04d", number), brand: .unknown, expMonth: 11,
            expYear: 2029, fingerprint: "fp\(number)", createdAt: Date(), cvvExpiresAt: nil)
    }
}

extension TestServer {
    func walletPatch(_ uri: String, json: Any, idempotencyKey: String = UUID().uuidString) async throws -> Reply {
        var headers: HTTPFields = [:]
        headers[.idempotencyKey] = idempotencyKey
        return try await send(
            .patch, uri, auth: walletAuth, body: ByteBuffer(bytes: JSONCoding.data(json)), headers: headers)
    }

    func object(
        _ reply: Reply, _ status: HTTPResponse.Status, sourceLocation: SourceLocation = #_sourceLocation
    )
        throws -> [String: Any]
    {
        try #require(reply.status == status, "\(reply)", sourceLocation: sourceLocation)
        return try JSONCoding.object(String(decoding: reply.body, as: UTF8.self))
    }
}

@Suite("Virtual-card routes", .timeLimit(.minutes(2)))
struct VirtualCardRouteTests {
    @Test("Issue, read, list, pause, resume and close a card over HTTP; bodies have exactly the documented fields")
    func lifecycle() async throws {
        let documented = try OpenAPITests.documentedProperties(of: "VirtualCard")
        try await withServer(wallets: WalletSetup(issuer: StubIssuer())) { server in
            let wallet = try await server.createWallet()
            let issued = try server.object(
                try await server.walletPost(
                    "/v1/wallets/\(wallet.id)/virtual_cards",
                    json: [
                        "type": "merchant_locked", "spend_limits": ["per_transaction": 5000, "monthly": 50000],
                        "blocked_mccs": ["7995"], "allowed_countries": ["FR", "DE"], "expires_in_months": 12,
                    ]), .created)
            #expect(Set(issued.keys) == documented)
            #expect(issued["state"] as? String == "inactive")
            #expect(issued["type"] as? String == "merchant_locked")
            #expect(issued["bin"] as? String == "999999")
            #expect(issued["allowed_countries"] as? [String] == ["DE", "FR"])
            #expect(issued["locked_merchant"] is NSNull)
            let limits = try #require(issued["spend_limits"] as? [String: Any])
            #expect(limits["per_transaction"] as? Int == 5000)
            #expect(limits["daily"] is NSNull)
            let spent = try #require(issued["spent"] as? [String: Any])
            #expect(spent["lifetime"] as? Int == 0)
            let id = try #require(issued["id"] as? String)

            let read = try server.object(try await server.walletGet("/v1/virtual_cards/\(id)"), .ok)
            #expect(read["id"] as? String == id)
            let list = try server.object(try await server.walletGet("/v1/wallets/\(wallet.id)/virtual_cards"), .ok)
            #expect((list["virtual_cards"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])

            let paused = try await server.walletPatch("/v1/virtual_cards/\(id)", json: ["state": "paused"])
            #expect(paused.status == .conflict, "an inactive card cannot be paused")
            #expect(paused.errorCode == "invalid_state_transition")
            let active = try server.object(
                try await server.walletPost("/v1/virtual_cards/\(id)/activate", text: ""), .ok)
            #expect(active["state"] as? String == "active")
            let changed = try server.object(
                try await server.walletPatch(
                    "/v1/virtual_cards/\(id)", json: ["state": "paused", "spend_limits": ["daily": 700]]), .ok)
            #expect(changed["state"] as? String == "paused")
            #expect((changed["spend_limits"] as? [String: Any])?["daily"] as? Int == 700)
            #expect((changed["spend_limits"] as? [String: Any])?["per_transaction"] is NSNull)
            _ = try server.object(
                try await server.walletPatch("/v1/virtual_cards/\(id)", json: ["state": "closed"]), .ok)
            let afterClose = try await server.walletPatch("/v1/virtual_cards/\(id)", json: ["state": "active"])
            #expect(afterClose.status == .conflict)
            #expect(afterClose.errorCode == "card_closed")
        }
    }

    @Test("Bad bodies get clear 4xx codes; unknown cards 404; without an issuer 503")
    func refusals() async throws {
        try await withServer(wallets: WalletSetup(issuer: StubIssuer())) { server in
            let wallet = try await server.createWallet()
            let uri = "/v1/wallets/\(wallet.id)/virtual_cards"
            let cases: [([String: Any], HTTPResponse.Status, String)] = [
                ([:], .badRequest, "missing_field"),
                (["type": "debit"], .badRequest, "invalid_field"),
                (["type": "multi_use", "spend_limits": ["daily": 0]], .badRequest, "invalid_spend_limits"),
                (["type": "multi_use", "spend_limits": ["daily": 1.5]], .badRequest, "invalid_field"),
                (["type": "multi_use", "allowed_mccs": ["12345"]], .badRequest, "invalid_mcc"),
                (["type": "multi_use", "allowed_countries": ["de"]], .badRequest, "invalid_country"),
                (["type": "multi_use", "expires_in_months": 61], .badRequest, "invalid_expires_in_months"),
                (["type": "multi_use", "activate": NSNull()], .badRequest, "invalid_field"),
            ]
            for (body, status, code) in cases {
                let reply = try await server.walletPost(uri, json: body)
                #expect(reply.status == status, "\(body): \(reply)")
                #expect(reply.errorCode == code, "\(body)")
            }
            let noKey = try await server.walletPost(uri, json: ["type": "multi_use"], idempotencyKey: nil)
            #expect(noKey.errorCode == "idempotency_key_required")
            let unknown = try await server.walletGet("/v1/virtual_cards/vc_aaaaaaaaaaaaaaaaaaaaaaaaaa")
            #expect(unknown.status == .notFound)
            #expect(unknown.errorCode == "virtual_card_not_found")
            let unknownWalletReply = try await server.walletPost(
                "/v1/wallets/\(unknownWallet)/virtual_cards", json: ["type": "multi_use"])
            #expect(unknownWalletReply.status == .notFound)
        }
        try await withServer(wallets: WalletSetup()) { server in
            let wallet = try await server.createWallet()
            let reply = try await server.walletPost(
                "/v1/wallets/\(wallet.id)/virtual_cards", json: ["type": "multi_use"])
            #expect(reply.status == .serviceUnavailable)
            #expect(reply.errorCode == "issuing_not_configured")
        }
    }
}
