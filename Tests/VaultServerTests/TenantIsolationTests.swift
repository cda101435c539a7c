import CardTokens
import Foundation
import GRDB
import HTTPTypes
import Testing
import TokenVault
import VaultTestSupport

/// Issue 8, finding 11 (dedupe never touches another party's token, nor answers a different
/// expiry) and finding 13 (tokens and wallets belong to a tenant; keys see only their own).
@Suite("Tenants and dedupe")
struct TenantIsolationTests {
    /// The sealed CVV held for `token`, as stored (its bytes change if anything replaces it).
    static func heldCVV(of token: String, in vault: Vault) async throws -> [UInt8]? {
        try await vault.database.pool.read { db in
            try Data.fetchOne(db, sql: "SELECT ciphertext FROM cvvs WHERE token = ?", arguments: [token]).map {
                [UInt8]($0)
            }
        }
    }

    @Test("Finding 11: another key's dedupe tokenize never replaces the CVV held for a token")
    func dedupeDoesNotReplaceAnotherPartysCVV() async throws {
        try await withServer { server in
            var card = TestCard.visa
            card.cvv = "123"
            let original = try await server.tokenized(card, dedupe: true)
            #expect(original.cvvHeld)
            let heldBefore = try await Self.heldCVV(of: original.token, in: server.vault)
            let (_, other) = try await server.key(scopes: [.tokenize], name: "other")
            card.cvv = "999"
            let reply = try await server.tokenize(card, dedupe: true, auth: .bearer(other))
            #expect(reply.status == .created)
            #expect(try reply.decode(TokenReply.self).token != original.token)
            // The original token's CVV is still the one it was given, with its expiry.
            let after = try await server.send(.get, "/v1/tokens/\(original.token)")
            #expect(try after.decode(TokenReply.self).cvvExpiresAt == original.cvvExpiresAt)
            let heldAfter = try await Self.heldCVV(of: original.token, in: server.vault)
            #expect(heldBefore != nil && heldAfter == heldBefore)
        }
    }

    @Test("Finding 11: a dedupe hit with another expiry is refused with 409 dedupe_expiry_mismatch")
    func dedupeRefusesAnotherExpiry() async throws {
        try await withServer { server in
            let original = try await server.tokenized(.mastercard, dedupe: true)
            var renewed = TestCard.mastercard
            renewed.expYear += 2
            renewed.cvv = "456"
            let reply = try await server.tokenize(renewed, dedupe: true)
            #expect(reply.status == .conflict)
            #expect(reply.errorCode == "dedupe_expiry_mismatch")
            let after = try await server.send(.get, "/v1/tokens/\(original.token)").decode(TokenReply.self)
            #expect(after.expYear == original.expYear && !after.cvvHeld)
            // Without dedupe the renewed card gets a token of its own.
            #expect(try await server.tokenize(renewed).status == .created)
        }
    }

    @Test("Finding 13: a key of another tenant cannot read, delete, save or charge a token, or reach a wallet")
    func tenantsAreSeparate() async throws {
        try await withServer(wallets: WalletSetup()) { server in
            let token = try await server.tokenized(.visa).token
            let wallet = try await server.createWallet()
            let (_, acme) = try await server.vault.credentials.create(
                name: "acme", scopes: [.tokenize, .tokensRead, .tokensDelete, .wallet], purposes: [], tenant: "acme")
            let acmeAuth = Auth.bearer(acme)

            #expect(try await server.send(.get, "/v1/tokens/\(token)", auth: acmeAuth).status == .notFound)
            #expect(try await server.send(.delete, "/v1/tokens/\(token)", auth: acmeAuth).status == .notFound)
            #expect(try await server.send(.get, "/v1/tokens/\(token)").status == .ok)

            // Wallets of the default tenant are not found for acme's key.
            for uri in [
                "/v1/wallets/\(wallet.id)", "/v1/wallets/\(wallet.id)/cards", "/v1/wallets/\(wallet.id)/transactions",
            ] {
                let reply = try await server.send(.get, uri, auth: acmeAuth)
                #expect(reply.status == .notFound, "\(uri): \(reply)")
                #expect(reply.errorCode == "wallet_not_found")
            }
            let saveToOthers = try await server.walletPost(
                "/v1/wallets/\(wallet.id)/cards", json: ["token": token], auth: acmeAuth)
            #expect(saveToOthers.errorCode == "wallet_not_found")

            // acme's own wallet cannot take the default tenant's token.
            let created = try await server.walletPost(
                "/v1/wallets", json: ["owner_ref": "acme-1", "currency": "EUR"], auth: acmeAuth)
            let acmeWallet = try created.decode(WalletReply.self)
            let foreignCard = try await server.walletPost(
                "/v1/wallets/\(acmeWallet.id)/cards", json: ["token": token], auth: acmeAuth)
            #expect(foreignCard.status == .unprocessableContent)
            #expect(foreignCard.errorCode == "token_not_found")
            // … nor move money out of the default tenant's wallet, nor the other way round.
            let transfer = try await server.transfer(
                from: wallet.id, to: acmeWallet.id, amount: 1, auth: acmeAuth)
            #expect(transfer.errorCode == "wallet_not_found")
            #expect(
                try await server.transfer(from: wallet.id, to: acmeWallet.id, amount: 1).errorCode == "wallet_not_found"
            )
            #expect(try await server.walletGet("/v1/wallets/\(acmeWallet.id)").errorCode == "wallet_not_found")

            // Its own tenant's token works.
            let acmeToken = try await server.tokenize(.mastercard, auth: acmeAuth).decode(TokenReply.self).token
            let saved = try await server.walletPost(
                "/v1/wallets/\(acmeWallet.id)/cards", json: ["token": acmeToken], auth: acmeAuth)
            #expect(saved.status == .created)
        }
    }

    @Test("Finding 13: a tenant name is checked when a key is created")
    func tenantNamesAreChecked() async throws {
        try await withServer { server in
            for bad in ["", "Acme", "4111111111111111", "acme corp", String(repeating: "a", count: 65), "-acme"] {
                await #expect(throws: VaultError.self, "\(bad)") {
                    try await server.vault.credentials.create(name: "x", scopes: [.tokenize], purposes: [], tenant: bad)
                }
            }
        }
    }
}
