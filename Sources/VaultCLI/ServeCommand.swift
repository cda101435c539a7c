import ArgumentParser
import Foundation
import Hummingbird
import Logging
import TokenVault
import VaultServer

/// `vault serve`: the HTTP API.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the public tokenization API.",
        discussion: """
            Refuses to start if the master key is missing, of the wrong size, readable by group or others, or does \
            not open the key ring. Picks up key rotations and credential revocations made by other processes within \
            a few seconds. Stop with SIGINT or SIGTERM.
            """)

    @OptionGroup var storage: StorageOptions

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "The port of the public API (tokenize, metadata, delete).")
    var publicPort: Int = 8080

    @Option(help: "How long a CVV given at tokenization is held, in seconds (PCI DSS 3.3.2).")
    var cvvTtl: Int = 3600

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65535).contains(publicPort) else { throw ValidationError("--public-port must be 0 to 65535") }
        guard cvvTtl > 0 else { throw ValidationError("--cvv-ttl must be positive") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    func run() async throws {
        try await CLI.run {
            let logger = CLI.logger(level: Logger.Level(rawValue: logLevel) ?? .info)
            let vault = try await Vault.open(paths: storage.paths, logger: logger, cvvTimeToLive: TimeInterval(cvvTtl))
            let app = VaultApplication.make(
                vault: vault, configuration: ServerConfiguration(host: host, publicPort: publicPort), logger: logger
            ) { port in
                print("vault: public API listening on http://\(host):\(port)")
                print("vault: active data key v\(vault.keyRing.active.version); data in \(storage.dataDir)")
                print(
                    "vault: create an API key with: vault credentials create --name frontend --scope tokenize --scope tokens:read"
                )
                fflush(nil)
            }
            try await app.runService()
        }
    }
}
