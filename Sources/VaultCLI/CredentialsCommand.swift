import ArgumentParser
import CardTokens
import Foundation
import TokenVault

/// `vault credentials …`: API keys.
struct CredentialsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credentials",
        abstract: "Create, list and revoke API keys.",
        discussion: """
            Scopes: tokenize, tokens:read, tokens:delete, detokenize, audit:read, wallet. A detokenize key also lists \
            the purposes it may use and what each may reveal (--purpose settlement:pan, --purpose chargeback for \
            masked PANs only). Every key belongs to a tenant (--tenant, default "default"): it sees only its \
            tenant's tokens and wallets. Secrets are shown once and stored only as keyed hashes.
            """,
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API key and print its secret once.")

        @OptionGroup var storage: StorageOptions
        @Option(help: "A name saying who holds the key.") var name: String
        @Option(help: "A scope the key grants (repeat for several).") var scope: [String] = []
        @Option(
            help: ArgumentHelp(
                "A purpose a detokenize key may name (repeat for several): NAME reveals masked PANs only, NAME:pan full PANs too, cardholder_reveal:cvv also the CVVs of cards the vault issued.",
                valueName: "name[:masked|:pan]"))
        var purpose: [String] = []
        @Option(
            help: ArgumentHelp(
                "The tenant the key's tokens and wallets belong to (1 to 64 of a-z 0-9 _ -).", valueName: "name"))
        var tenant: String = Principal.defaultTenant
        @Flag(help: "Print {\"id\": …, \"secret\": …}.") var json = false

        func run() async throws {
            try await CLI.run {
                let vault = try await CLI.opened(storage, logger: CLI.logger())
                let (credential, secret) = try await vault.credentials.create(
                    name: name, scopes: scope.map(Scope.init(rawValue:)), purposes: purpose, tenant: tenant)
                if json {
                    try CLI.printJSON(["id": credential.id, "secret": secret])
                } else {
                    print("id:     \(credential.id)")
                    print("tenant: \(credential.tenant)")
                    print("scopes: \(credential.scopes.map(\.rawValue).joined(separator: " "))")
                    if !credential.purposes.isEmpty {
                        print("purposes: \(credential.purposeGrants.joined(separator: " "))")
                    }
                    print("secret: \(secret)")
                    print("The secret is shown only now. Send it as: Authorization: Bearer <secret>")
                }
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List API keys (never their secrets).")

        @OptionGroup var storage: StorageOptions
        @Flag(help: "Print a JSON array.") var json = false

        struct Output: Encodable {
            var id: String
            var name: String
            var tenant: String
            var scopes: [String]
            /// `name:pan` or `name:masked`.
            var purposes: [String]
            var createdAt: Date
            var revokedAt: Date?
        }

        func run() async throws {
            try await CLI.run {
                let credentials = try await CLI.opened(storage, logger: CLI.logger()).credentials.list()
                let output = credentials.map {
                    Output(
                        id: $0.id, name: $0.name, tenant: $0.tenant, scopes: $0.scopes.map(\.rawValue),
                        purposes: $0.purposeGrants,
                        createdAt: $0.createdAt, revokedAt: $0.revokedAt)
                }
                guard !json else { return try CLI.printJSON(output) }
                if output.isEmpty { print("No credentials. Create one with `vault credentials create`.") }
                for credential in output {
                    let state = credential.revokedAt == nil ? "active" : "revoked"
                    print(
                        "\(credential.id)  \(state)  \(credential.tenant)  \(credential.name)  "
                            + "[\(credential.scopes.joined(separator: " "))]"
                            + (credential.purposes.isEmpty
                                ? "" : "  purposes: \(credential.purposes.joined(separator: " "))"))
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke an API key.", discussion: "A running server stops accepting it within seconds.")

        @OptionGroup var storage: StorageOptions
        @Argument(help: "The credential id (from `vault credentials list`).") var id: String

        func run() async throws {
            try await CLI.run {
                try await CLI.opened(storage, logger: CLI.logger()).credentials.revoke(id: id)
                print("Credential \(id) is revoked.")
            }
        }
    }
}
