public import ArgumentParser

/// `vault`: the card vault's command line.
public struct VaultCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "vault",
        abstract: "A card vault: tokenizes card numbers under rotating keys, and manages its keys and API credentials.",
        discussion: """
            Start with `vault keys init`, create an API key with `vault credentials create`, then `vault serve`.
            Every command takes --data-dir (default ./data) and --keys-dir (default ./Keys).
            """,
        version: "0.1.0",
        subcommands: [
            ServeCommand.self, KeysCommand.self, CredentialsCommand.self, AuditCommand.self, BenchCommand.self,
            LoadCommand.self, AcquirerSimCommand.self,
        ]
    )

    public init() {}

    /// Parses the process arguments and runs the command (the executable's entry point).
    public static func start() async {
        await main()
    }
}
