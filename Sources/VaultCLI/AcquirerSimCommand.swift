import AcquirerSimulator
import ArgumentParser
import Foundation
import Logging

/// `vault acquirer-sim`: a card acquirer's test environment, as a process of its own.
struct AcquirerSimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "acquirer-sim",
        abstract: "Run a card acquirer's test environment that answers the vault's authorizations.",
        discussion: """
            Answers POST /v1/authorizations (the card block sealed to acquirer.pub), \
            GET /v1/authorizations/{reference} and GET /healthz. Point the vault at it with \
            `vault serve --acquirer-url http://HOST:PORT`.

            Rules (the first that matches wins):
              PAN 4000000000000002         declined, do_not_honor
              PAN 4000000000009995         declined, insufficient_funds
              expiry before this month     declined, expired_card
              amount over --amount-limit   declined, amount_limit_exceeded
              CVV sent and not 737         declined, incorrect_cvv
                                           (7373 on 4-digit-CVV cards: Amex)
              no CVV sent                  accepted (stored credential)
              otherwise                    approved, random 6-digit auth code

            Magic amounts, for failure testing:
              50300  HTTP 503 acquirer_unavailable; nothing is recorded
              40800  answered after --slow-delay seconds (the caller times
                     out), then recorded

            A repeated reference with the same amount and currency gets the first answer; with another \
            amount or currency it gets 409 reference_reused.

            State in --state-dir: acquirer.key (X25519 secret key, 32 raw bytes, mode 0600), acquirer.pub \
            (public key, 32 raw bytes, mode 0644), both created on first start; acquirer.db (SQLite, WAL): one \
            record per authorization with reference, amount, currency, BIN, last four, whether a CVV was sent, \
            decision, auth code, acquirer reference and time; never the PAN or the CVV. Refuses to start if \
            acquirer.key can be accessed by group or others, is not 32 bytes, or acquirer.pub does not match it.
            Stop with SIGINT or SIGTERM.
            """)

    @Option(help: "The port to listen on (0: any free port, printed on start).")
    var port: Int = 8090

    @Option(help: "The folder holding acquirer.key, acquirer.pub and acquirer.db (created if missing).")
    var stateDir: String

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "Amounts (minor units) above this are declined amount_limit_exceeded.")
    var amountLimit: Int64 = AcquirerConfiguration.defaultAmountLimit

    @Option(help: "Seconds the magic amount 40800 waits before it is answered.")
    var slowDelay: Double = 10

    @OptionGroup(title: "Connections") var connections: ListenerOptions

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
        guard amountLimit > 0 else { throw ValidationError("--amount-limit must be positive") }
        guard slowDelay >= 0, slowDelay.isFinite else { throw ValidationError("--slow-delay must be 0 or more") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    func run() async throws {
        CLI.harden()
        connections.ensureFileDescriptors(listeners: 1, command: "acquirer-sim")
        var logger = Logger(label: "acquirer-sim") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let simulator: AcquirerSimulator
        do {
            simulator = try AcquirerSimulator.open(
                stateDirectory: stateDir,
                configuration: AcquirerConfiguration(
                    amountLimit: amountLimit, slowDelay: .milliseconds(Int64((slowDelay * 1000).rounded()))),
                logger: logger)
        } catch let error as AcquirerKeyError {
            CLI.fail(error.description)
        } catch {
            CLI.fail("cannot open the acquirer state in \(stateDir): \(error)")
        }
        let host = self.host
        let publicKeyPath = (stateDir as NSString).appendingPathComponent(AcquirerKeyPair.publicKeyFileName)
        try await AcquirerServer.run(
            simulator: simulator, host: host, port: port, limits: connections.limits, logger: logger
        ) { port in
            print("acquirer-sim: listening on http://\(host):\(port)")
            print("acquirer-sim: public key \(publicKeyPath); records in \(simulator.databasePath)")
            fflush(nil)
        }
    }
}
