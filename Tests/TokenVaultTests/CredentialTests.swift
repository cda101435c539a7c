import Audit
import CardTokens
import Foundation
import GRDB
import InMemoryLogging
import Logging
import Synchronization
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

@Suite("Credentials")
struct CredentialTests {
    /// `secret` with the character at `offset` replaced by another base64url character.
    static func altered(_ secret: String, at offset: Int) -> String {
        var characters = Array(secret)
        characters[offset] = characters[offset] == "A" ? "B" : "A"
        return String(characters)
    }

    @Test func createAuthenticateRevoke() async throws {
        try await withVault { vault, sandbox in
            let (credential, secret) = try await vault.credentials.create(
                name: "  wallet frontend ", scopes: [.tokenize], purposes: [])
            #expect(secret.wholeMatch(of: /vk_[a-z0-9]{16}_[A-Za-z0-9_-]{43}/) != nil, "\(secret)")
            #expect(secret.hasPrefix("vk_\(credential.id)_"))
            #expect(credential.name == "wallet frontend")
            #expect(credential.scopes == [.tokenize] && credential.purposes.isEmpty)
            #expect(credential.revokedAt == nil)
            #expect(credential.allows(.tokenize) && !credential.allows(.detokenize))

            #expect(await vault.credentials.authenticate(secret: secret) == credential)
            // One character changed anywhere (id or secret part) is a different, unknown secret.
            for offset in [3, 10, 20, secret.count - 1] {
                #expect(await vault.credentials.authenticate(secret: Self.altered(secret, at: offset)) == nil)
            }
            for garbage in ["", "vk_", "vk_\(credential.id)_", secret + "A", String(secret.dropLast())] {
                #expect(await vault.credentials.authenticate(secret: garbage) == nil)
            }

            // Another instance finds it in the database; its cache follows a revocation after reload.
            let other = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            #expect(await other.credentials.authenticate(secret: secret)?.id == credential.id)

            try await vault.credentials.revoke(id: credential.id)
            #expect(await vault.credentials.authenticate(secret: secret) == nil)
            try await other.credentials.reload()
            #expect(await other.credentials.authenticate(secret: secret) == nil)

            let listed = try await vault.credentials.list()
            #expect(listed.map(\.id) == [credential.id])
            #expect(listed.first?.revokedAt != nil)
            #expect(listed.first.map { !$0.allows(.tokenize) } ?? false)

            let again = await #expect(throws: VaultError.self) { try await vault.credentials.revoke(id: credential.id) }
            #expect(again?.code == .credentialNotFound)
            let unknown = await #expect(throws: VaultError.self) { try await vault.credentials.revoke(id: "nope") }
            #expect(unknown?.code == .credentialNotFound)

            // Only a keyed hash is stored: neither the secret nor its random part is in the table.
            let randomPart = String(secret.split(separator: "_", maxSplits: 2)[2])
            for value in try DB.allValues(vault, table: "credentials") {
                #expect(!Bytes.contains(value, secret) && !Bytes.contains(value, randomPart))
            }
            try DB.checkpoint(vault)
            #expect(!Bytes.contains(try Bytes.read(sandbox.databasePath), randomPart))
        }
    }

    @Test func detokenizeCredentialsListTheirPurposes() async throws {
        try await withVault { vault, _ in
            let (credential, secret) = try await vault.credentials.create(
                name: "settlement", scopes: [.detokenize, .auditRead, .detokenize],
                purposes: ["settlement", "chargeback", "settlement"])
            #expect(credential.scopes == [.auditRead, .detokenize])
            #expect(credential.purposes == ["chargeback", "settlement"])
            let loaded = try #require(try await vault.credentials.list().first)
            #expect(loaded.id == credential.id && loaded.name == "settlement")
            #expect(loaded.scopes == credential.scopes && loaded.purposes == credential.purposes)
            #expect(abs(loaded.createdAt.timeIntervalSince(credential.createdAt)) < 0.002)
            #expect(await vault.credentials.authenticate(secret: secret)?.purposes == ["chargeback", "settlement"])
        }
    }

    @Test("cardholder_reveal:cvv grants full PANs and CVVs, and survives storage; :pan grants no CVV")
    func cvvGrant() async throws {
        try await withVault { vault, _ in
            let (credential, secret) = try await vault.credentials.create(
                name: "cardholder-app", scopes: [.detokenize], purposes: ["cardholder_reveal:cvv", "settlement:pan"])
            let loaded = try #require(await vault.credentials.authenticate(secret: secret))
            for key in [credential, loaded] {
                #expect(key.mayRevealCVV(for: "cardholder_reveal") && key.mayRevealPAN(for: "cardholder_reveal"))
                #expect(!key.mayRevealCVV(for: "settlement") && key.mayRevealPAN(for: "settlement"))
                #expect(key.purposeGrants == ["cardholder_reveal:cvv", "settlement:pan"])
            }
            let (panOnly, _) = try await vault.credentials.create(
                name: "support", scopes: [.detokenize], purposes: ["cardholder_reveal:pan"])
            #expect(!panOnly.mayRevealCVV(for: "cardholder_reveal"))
        }
    }

    @Test("a key that joins network with other scopes (made before that was refused) may do nothing")
    func mixedNetworkKeyActsOnNothing() {
        let mixed = Credential(
            id: "mixed00000000001", name: "old", scopes: [.network, .tokensRead], purposes: [], createdAt: Date(),
            revokedAt: nil)
        #expect(!mixed.allows(.network) && !mixed.allows(.tokensRead))
        let network = Credential(
            id: "network000000001", name: "network", scopes: [.network], purposes: [], createdAt: Date(),
            revokedAt: nil)
        #expect(network.allows(.network))
    }

    @Test func invalidCredentialsAreRefused() async throws {
        try await withVault { vault, _ in
            let cases: [(name: String, scopes: [Scope], purposes: [String])] = [
                ("x", [Scope(rawValue: "everything")], []),
                ("x", [.tokenize], ["settlement"]),
                ("x", [.detokenize], ["Settlement!"]),
                ("x", [], []),
                ("   ", [.tokenize], []),
                (String(repeating: "n", count: 201), [.tokenize], []),
                // The card network's key stands alone.
                ("x", [.network, .tokensRead], []),
                ("x", [.network, .detokenize], ["settlement"]),
                // Only the cardholder's reveal may be granted CVVs.
                ("x", [.detokenize], ["settlement:cvv"]),
                ("x", [.detokenize], ["cardholder_reveal:everything"]),
            ]
            for item in cases {
                let error = await #expect(throws: VaultError.self, "\(item)") {
                    _ = try await vault.credentials.create(
                        name: item.name, scopes: item.scopes, purposes: item.purposes)
                }
                #expect(error?.code == .invalidArgument, "\(item)")
            }
            let remaining = try await vault.credentials.list()
            #expect(remaining.isEmpty)
            let types = try await vault.audit.records().map(\.event.type)
            #expect(!types.contains("credential.create"))
        }
    }

    @Test("Finding 17: an unknown key id costs one database read until the next reload")
    func unknownIDsAreRememberedUntilReload() async throws {
        try await withVault { vault, _ in
            let made = "vk_abcdefghij012345_" + String(repeating: "A", count: 43)
            for _ in 0..<5 { #expect(await vault.credentials.authenticate(secret: made) == nil) }
            #expect(vault.credentials.databaseLookups.load(ordering: .relaxed) == 1)
            // A key created by another process (the CLI) is found once the server reloads.
            let other = CredentialService(database: vault.database, keyRing: vault.keyRing, audit: vault.audit)
            let (created, secret) = try await other.create(name: "later", scopes: [.tokenize], purposes: [])
            try await vault.credentials.reload()
            #expect(await vault.credentials.authenticate(secret: secret)?.id == created.id)
            #expect(await vault.credentials.authenticate(secret: made) == nil)
            #expect(vault.credentials.databaseLookups.load(ordering: .relaxed) == 2)
        }
    }
}
