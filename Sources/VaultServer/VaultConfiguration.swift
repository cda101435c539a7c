import CardIssuing
import Detokenization
public import Foundation
public import HTTPListener
public import TokenVault
public import Wallet

/// Everything `vault serve` is configured with, with every default written here once (the CLI's
/// flags default to these values and only map onto them).
public struct VaultConfiguration: Sendable {
    /// Where the data folder and the master key are.
    public var paths: VaultPaths
    public var host: String = "127.0.0.1"
    /// The public API: tokenize, metadata, delete, wallets.
    public var publicPort: Int = 8080
    /// The detokenize listener: detokenize and audit routes only.
    public var detokenizePort: Int = 8081
    /// The card network's listener: authorizations, clearings, reversals and refunds of issued cards.
    public var networkPort: Int = 8082
    /// How long an authorization's hold waits for its clearing before it expires.
    public var authorizationHoldDays: Int = 7
    /// How old a top-up whose acquirer answer was lost must be before the maintenance pass asks
    /// the acquirer for it (well past a request's own retries), in seconds.
    public var topUpResolveAfterSeconds: Int = 120
    /// How long the maintenance pass keeps asking before it voids such a top-up and reports it,
    /// in hours.
    public var topUpAbandonAfterHours: Int = 24
    /// Timeouts and the connection cap, for each listener on its own.
    public var limits = ListenerLimits()
    /// Tokens detokenized per second per credential (bursts up to the same number); `nil` for no limit.
    public var detokenizeRateLimit: Double? = 1000
    /// Full PANs one credential may reveal per UTC day; `nil` for no limit.
    public var detokenizePANDailyLimit: Int? = 100_000
    /// Cards tokenized per second per credential (bursts up to the same number); `nil` for no limit.
    public var tokenizeRateLimit: Double? = 2000
    /// Distinct PANs sharing a BIN and last four one credential may tokenize per hour.
    public var similarCardLimit: Int = 10
    /// How long a CVV given at tokenization is held (PCI DSS 3.3.2).
    public var cvvTimeToLive: TimeInterval = 3600
    /// How long wallet Idempotency-Key outcomes are kept.
    public var idempotencyRetention: Duration = .seconds(24 * 3600)
    /// The card acquirer top-ups are authorized with; `nil` turns top-ups off.
    public var acquirer: Acquirer?
    /// How new virtual account numbers are made.
    public var numbering: VirtualAccountNumbering = .default
    /// The BIN of the cards issued inside the vault, 6 or 8 digits (by default one no network
    /// assigns: see ``VaultCardIssuer/defaultBIN``).
    public var issuingBIN: String = VaultCardIssuer.defaultBIN
    /// The length of the card numbers issued, 16 to 19.
    public var issuingPANLength: Int = VaultCardIssuer.defaultPANLength

    /// The acquirer's address and key (see ``AcquirerEndpoint``).
    public struct Acquirer: Sendable {
        public var baseURL: String
        /// `acquirer.pub`: 32 raw bytes, not writable by group or others.
        public var publicKeyFile: String
        public var timeout: Duration = AcquirerEndpoint.defaultTimeout
        /// The key's 64 hex digits, if pinned.
        public var pin: String?

        public init(baseURL: String, publicKeyFile: String, timeout: Duration? = nil, pin: String? = nil) {
            self.baseURL = baseURL
            self.publicKeyFile = publicKeyFile
            self.timeout = timeout ?? AcquirerEndpoint.defaultTimeout
            self.pin = pin
        }
    }

    public init(paths: VaultPaths = VaultPaths()) {
        self.paths = paths
    }

    /// The defaults, for the CLI's flags.
    public static let defaults = VaultConfiguration()

    /// Checks an issuing BIN and PAN length as the card issuer will.
    /// - Throws: ``VaultError`` `invalid_argument` naming the rule that failed.
    public static func checkIssuing(bin: String, panLength: Int) throws {
        try VaultCardIssuer.checkConfiguration(bin: bin, panLength: panLength)
    }
}
