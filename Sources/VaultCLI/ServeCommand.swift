import ArgumentParser
import Detokenization
import Foundation
import Hummingbird
import Ledger
import Logging
import TokenVault
import VaultServer
import Wallet

/// `vault serve`: the HTTP API.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the public tokenization API and, on its own port, the audited detokenize API.",
        discussion: """
            Refuses to start if the master key is missing, of the wrong size, readable by group or others, or does \
            not open the key ring. Picks up key rotations and credential revocations made by other processes within \
            a few seconds. Stop with SIGINT or SIGTERM.
            """)

    @OptionGroup var storage: StorageOptions

    @Option(help: "The address to listen on.")
    var host: String = VaultConfiguration.defaults.host

    @Option(help: "The port of the public API (tokenize, metadata, delete).")
    var publicPort: Int = VaultConfiguration.defaults.publicPort

    @Option(help: "The port of the detokenize API (detokenize and audit routes, audited, own credentials).")
    var detokenizePort: Int = VaultConfiguration.defaults.detokenizePort

    @Option(
        help:
            "The port of the card network's API (authorizations, clearings, reversals and refunds of issued cards; scope network)."
    )
    var networkPort: Int = VaultConfiguration.defaults.networkPort

    @Option(
        help: ArgumentHelp(
            "How long an authorization's hold waits for its clearing before it expires.", valueName: "days"))
    var authorizationHoldDays: Int = VaultConfiguration.defaults.authorizationHoldDays

    @Option(
        help: ArgumentHelp(
            "How old a top-up whose acquirer answer was lost (timeout, 5xx, crash) must be before the acquirer is asked for it.",
            valueName: "seconds"))
    var topUpResolveAfter: Int = VaultConfiguration.defaults.topUpResolveAfterSeconds

    @Option(
        help: ArgumentHelp(
            "How long to keep asking the acquirer about such a top-up before voiding its hold and reporting it.",
            valueName: "hours"))
    var topUpAbandonAfter: Int = VaultConfiguration.defaults.topUpAbandonAfterHours

    @OptionGroup(title: "Connections (each listener on its own)") var connections: ListenerOptions

    @Option(
        help: ArgumentHelp(
            "Tokens detokenized per second per API key (a request of n tokens counts n; bursts up to the same number); 0 for no limit.",
            valueName: "tokens"))
    var detokenizeRateLimit: Double = VaultConfiguration.defaults.detokenizeRateLimit ?? 0

    @Option(
        help: ArgumentHelp(
            "Full PANs (reveal pan) one API key may reveal per UTC day; 0 for no limit.", valueName: "pans"))
    var detokenizePanDailyLimit: Int = VaultConfiguration.defaults.detokenizePANDailyLimit ?? 0

    @Option(
        help: ArgumentHelp(
            "Cards tokenized per second per API key (a batch of n cards counts n; bursts up to the same number); 0 for no limit.",
            valueName: "cards"))
    var tokenizeRateLimit: Double = VaultConfiguration.defaults.tokenizeRateLimit ?? 0

    @Option(
        help: ArgumentHelp(
            "Distinct card numbers sharing one BIN and last four that one API key may tokenize per hour; more are refused (429 similar_cards_limit) and audited.",
            valueName: "cards"))
    var similarCardLimit: Int = VaultConfiguration.defaults.similarCardLimit

    @Option(help: "How long a CVV given at tokenization is held, in seconds (PCI DSS 3.3.2).")
    var cvvTtl: Int = Int(VaultConfiguration.defaults.cvvTimeToLive)

    @Option(
        help: ArgumentHelp(
            "Base URL of the card acquirer that wallet top-ups are authorized with, e.g. http://127.0.0.1:8090.",
            discussion: "Without it, top-ups are refused with acquirer_not_configured (503)."))
    var acquirerUrl: String?

    @Option(
        help:
            "The acquirer's public key file (acquirer.pub, 32 raw bytes, not writable by group or others); card data is sealed to it."
    )
    var acquirerKey: String?

    @Option(
        help: ArgumentHelp(
            "The acquirer's public key in hex (64 digits): refuse to start if --acquirer-key holds another key.",
            discussion: "vault serve prints the key it loaded; pin it once you have checked it with the acquirer.",
            valueName: "hex"))
    var acquirerKeyPin: String?

    @Option(help: "Seconds to wait for the acquirer before a top-up ends as acquirer_timeout (retryable).")
    var acquirerTimeout: Double = Double(AcquirerEndpoint.defaultTimeout.components.seconds)

    @Option(
        help: ArgumentHelp(
            "Hours a wallet Idempotency-Key outcome is kept (1 to 8760).",
            discussion:
                "A retry after that runs as a new request (a top-up still books once: its attempt keeps the key)."
        ))
    var idempotencyRetentionHours: Int = Int(VaultConfiguration.defaults.idempotencyRetention.components.seconds / 3600)

    @Option(help: "Country (ISO 3166) of new virtual account IBANs: AT, CH, DE, GB, IE, LI, LT, LU or NL.")
    var ibanCountry: String = VaultConfiguration.defaults.numbering.country

    @Option(
        help:
            "Bank code of new virtual account IBANs, in the country's format (DE: 8 digits; GB: 4 letters + sort code)."
    )
    var ibanBankCode: String = VaultConfiguration.defaults.numbering.bankCode

    @Option(
        help: ArgumentHelp(
            "BIN of the cards issued inside the vault: 6 or 8 digits.",
            discussion: "The default, 999999, belongs to no card network: set the BIN your network assigned.",
            valueName: "digits"))
    var issuingBin: String = VaultConfiguration.defaults.issuingBIN

    @Option(help: "Length of the card numbers issued inside the vault: 16 to 19 digits.")
    var issuingPanLength: Int = VaultConfiguration.defaults.issuingPANLength

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65535).contains(publicPort) else { throw ValidationError("--public-port must be 0 to 65535") }
        guard (0...65535).contains(detokenizePort) else {
            throw ValidationError("--detokenize-port must be 0 to 65535")
        }
        guard (0...65535).contains(networkPort) else { throw ValidationError("--network-port must be 0 to 65535") }
        guard (1...60).contains(authorizationHoldDays) else {
            throw ValidationError("--authorization-hold-days must be 1 to 60")
        }
        guard (30...86_400).contains(topUpResolveAfter) else {
            throw ValidationError("--top-up-resolve-after must be 30 to 86400 seconds")
        }
        guard (1...720).contains(topUpAbandonAfter), topUpAbandonAfter * 3600 > topUpResolveAfter else {
            throw ValidationError(
                "--top-up-abandon-after must be 1 to 720 hours, and longer than --top-up-resolve-after")
        }
        guard detokenizeRateLimit >= 0 else { throw ValidationError("--detokenize-rate-limit must be 0 or more") }
        guard detokenizePanDailyLimit >= 0 else {
            throw ValidationError("--detokenize-pan-daily-limit must be 0 or more")
        }
        guard tokenizeRateLimit >= 0 else { throw ValidationError("--tokenize-rate-limit must be 0 or more") }
        guard similarCardLimit >= 1 else { throw ValidationError("--similar-card-limit must be at least 1") }
        guard cvvTtl > 0 else { throw ValidationError("--cvv-ttl must be positive") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        if let acquirerKeyPin, acquirerKeyPin.utf8.count != 64 || !acquirerKeyPin.allSatisfy(\.isHexDigit) {
            throw ValidationError("--acquirer-key-pin must be the key's 64 hex digits")
        }
        guard acquirerKeyPin == nil || acquirerKey != nil else {
            throw ValidationError("--acquirer-key-pin needs --acquirer-key")
        }
        guard (acquirerUrl == nil) == (acquirerKey == nil) else {
            throw ValidationError("--acquirer-url and --acquirer-key go together")
        }
        guard (1...8760).contains(idempotencyRetentionHours) else {
            throw ValidationError("--idempotency-retention-hours must be 1 to 8760")
        }
        guard acquirerTimeout > 0, acquirerTimeout <= 120 else {
            throw ValidationError("--acquirer-timeout must be more than 0 and at most 120 seconds")
        }
        do {
            _ = try VirtualAccountNumbering(country: ibanCountry, bankCode: ibanBankCode)
        } catch {
            throw ValidationError("--iban-country/--iban-bank-code: \(error.message)")
        }
        do {
            try VaultConfiguration.checkIssuing(bin: issuingBin, panLength: issuingPanLength)
        } catch let error as VaultError {
            throw ValidationError("--issuing-bin/--issuing-pan-length: \(error.message)")
        }
    }

    /// The flags, mapped onto the one configuration (its defaults are the flags' defaults).
    func configuration() throws -> VaultConfiguration {
        var configuration = VaultConfiguration(paths: storage.paths)
        configuration.host = host
        configuration.publicPort = publicPort
        configuration.detokenizePort = detokenizePort
        configuration.networkPort = networkPort
        configuration.authorizationHoldDays = authorizationHoldDays
        configuration.topUpResolveAfterSeconds = topUpResolveAfter
        configuration.topUpAbandonAfterHours = topUpAbandonAfter
        configuration.limits = connections.limits
        configuration.detokenizeRateLimit = detokenizeRateLimit > 0 ? detokenizeRateLimit : nil
        configuration.detokenizePANDailyLimit = detokenizePanDailyLimit > 0 ? detokenizePanDailyLimit : nil
        configuration.tokenizeRateLimit = tokenizeRateLimit > 0 ? tokenizeRateLimit : nil
        configuration.similarCardLimit = similarCardLimit
        configuration.cvvTimeToLive = TimeInterval(cvvTtl)
        configuration.idempotencyRetention = .seconds(idempotencyRetentionHours * 3600)
        configuration.numbering = try VirtualAccountNumbering(country: ibanCountry, bankCode: ibanBankCode)
        configuration.issuingBIN = issuingBin
        configuration.issuingPANLength = issuingPanLength
        configuration.acquirer = acquirerUrl.map { url in
            VaultConfiguration.Acquirer(
                baseURL: url, publicKeyFile: acquirerKey ?? "", timeout: .milliseconds(Int(acquirerTimeout * 1000)),
                pin: acquirerKeyPin)
        }
        return configuration
    }

    func run() async throws {
        CLI.harden()
        connections.ensureFileDescriptors(listeners: 3, command: "vault")
        try await CLI.run {
            let logger = CLI.logger(level: Logger.Level(rawValue: logLevel) ?? .info)
            let started: VaultServices
            do {
                started = try await VaultApplication.build(try configuration(), logger: logger) { listener, port in
                    print("vault: \(listener) API listening on http://\(host):\(port)")
                    fflush(nil)
                }
            } catch let error as AcquirerEndpointError {
                CLI.fail(error.message)
            } catch let error as LedgerError {
                CLI.fail("\(SQLiteLedger.fileName) fails its invariants, refusing to start: \(error.message)")
            }
            print("vault: active data key v\(started.vault.keyRing.active.version); data in \(storage.dataDir)")
            print(
                "vault: wallet top-ups "
                    + (started.acquirer.map { "authorize with the acquirer at \($0.baseURL), key \($0.publicKeyHex)" }
                        ?? "are off (no --acquirer-url)"))
            print(
                "vault: create an API key with: vault credentials create --name frontend --scope tokenize "
                    + "--scope tokens:read")
            fflush(nil)
            try await started.run()
        }
    }
}
