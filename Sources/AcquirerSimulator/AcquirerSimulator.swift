public import Foundation
public import Logging
import SQLiteSupport
import VaultCrypto

/// How the simulator behaves.
public struct AcquirerConfiguration: Sendable, Hashable {
    /// The default ``amountLimit``: 1,000,000 minor units.
    public static let defaultAmountLimit: Int64 = 1_000_000
    /// An authorization of this amount is answered `503 acquirer_unavailable`, and nothing is
    /// recorded (for testing a caller's retry path).
    public static let unavailableAmount: Int64 = 50300
    /// An authorization of this amount is answered only after ``slowDelay`` (recorded just
    /// before the answer is sent), so that a caller with a shorter timeout times out.
    public static let slowAmount: Int64 = 40800

    /// Amounts above this are declined `amount_limit_exceeded`.
    public var amountLimit: Int64
    /// How long an authorization of ``slowAmount`` waits before it is recorded and answered.
    public var slowDelay: Duration

    public init(amountLimit: Int64 = defaultAmountLimit, slowDelay: Duration = .seconds(10)) {
        self.amountLimit = amountLimit
        self.slowDelay = slowDelay
    }
}

/// An authorization request as the simulator receives it (`POST /v1/authorizations`).
public struct AuthorizationSubmission: Sendable, Hashable {
    /// The caller's reference: the same on every retry of one charge.
    public var reference: String
    /// Minor units, positive.
    public var amount: Int64
    /// ISO 4217 alphabetic code.
    public var currency: String
    /// The sealed card block (`crypto_box_seal` to the acquirer's public key), decoded from base64.
    public var sealedCard: [UInt8]

    public init(reference: String, amount: Int64, currency: String, sealedCard: [UInt8]) {
        self.reference = reference
        self.amount = amount
        self.currency = currency
        self.sealedCard = sealedCard
    }
}

/// A card acquirer's test environment (`vault acquirer-sim`): it answers authorizations by rule
/// (``AcquirerDecision``), records them in `acquirer.db`, and holds the sealed-box key pair the
/// vault seals card blocks to (``AcquirerKeyPair``).
///
/// - Rules: see ``AcquirerDecision`` (test cards `4000000000000002` and `4000000000009995`,
///   expiry, amount limit, CVV `737`/`7373`).
/// - Failure testing: amount ``AcquirerConfiguration/unavailableAmount`` (50300) answers 503 and
///   records nothing; amount ``AcquirerConfiguration/slowAmount`` (40800) answers after
///   ``AcquirerConfiguration/slowDelay``.
/// - Idempotent per reference: a repeat of a known reference with the same amount and currency
///   gets the stored answer; with another amount or currency it is refused `409 reference_reused`.
/// - Records hold reference, amount, currency, BIN, last four, whether a CVV was sent, the
///   decision, auth code, acquirer reference and time: never the PAN or the CVV. The card block is
///   opened into guarded memory and parsed in place; no PAN or CVV reaches a `String` or a log.
public final class AcquirerSimulator: Sendable {
    public let configuration: AcquirerConfiguration
    public let keyPair: AcquirerKeyPair
    /// The state folder: `acquirer.key`, `acquirer.pub`, `acquirer.db`.
    public let stateDirectory: String
    let store: AcquirerStore
    private let logger: Logger
    private let clock: @Sendable () -> Date

    init(
        configuration: AcquirerConfiguration, keyPair: AcquirerKeyPair, stateDirectory: String, store: AcquirerStore,
        logger: Logger, clock: @escaping @Sendable () -> Date
    ) {
        self.configuration = configuration
        self.keyPair = keyPair
        self.stateDirectory = stateDirectory
        self.store = store
        self.logger = logger
        self.clock = clock
    }

    /// Opens the simulator's state in `stateDirectory`, creating the folder (mode 0700), the key
    /// pair and the database on first use.
    /// - Throws: ``AcquirerKeyError`` if a key file is refused (e.g. `acquirer.key` readable by
    ///   group or others, or of the wrong size); a database error if `acquirer.db` cannot be opened.
    public static func open(
        stateDirectory: String, configuration: AcquirerConfiguration = .init(), logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) throws -> AcquirerSimulator {
        do {
            try FileManager.default.createDirectory(
                atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw AcquirerKeyError(.unreadable, path: stateDirectory, problem: "cannot create the state folder")
        }
        let keyPair = try AcquirerKeyPair.loadOrCreate(directory: stateDirectory)
        let store = try AcquirerStore.open(directory: stateDirectory)
        return AcquirerSimulator(
            configuration: configuration, keyPair: keyPair, stateDirectory: stateDirectory, store: store,
            logger: logger, clock: clock)
    }

    /// The path of `acquirer.db`.
    public var databasePath: String { store.path }

    /// Answers one authorization (see the type's documentation for the rules).
    /// - Throws: ``AcquirerError``: 400 for a malformed request or card block, 409
    ///   `reference_reused`, 503 for the unavailable magic amount, 500 if the record cannot be written.
    public func authorize(_ submission: AuthorizationSubmission) async throws(AcquirerError) -> AuthorizationRecord {
        let started = ContinuousClock.now
        guard Self.isValidReference(submission.reference) else { throw .invalidReference }
        guard submission.amount > 0 else { throw .invalidAmount }
        guard submission.currency.utf8.count == 3, submission.currency.utf8.allSatisfy({ (65...90).contains($0) })
        else { throw .invalidCurrency }
        let facts = try openCard(submission.sealedCard)
        let reference = submission.reference
        if let existing = try await stored(reference) {
            guard existing.amount == submission.amount, existing.currency == submission.currency else {
                logger.notice("authorization reference reused", metadata: ["reference": "\(reference)"])
                throw .referenceReused
            }
            logger.info(
                "authorization replayed",
                metadata: ["reference": "\(reference)", "status": "\(existing.status.rawValue)"])
            return existing
        }
        if submission.amount == AcquirerConfiguration.unavailableAmount {
            logger.info("authorization answered 503 (magic amount)", metadata: ["reference": "\(reference)"])
            throw .unavailable
        }
        if submission.amount == AcquirerConfiguration.slowAmount {
            do {
                try await Task.sleep(for: configuration.slowDelay)
            } catch {
                throw .unavailable
            }
        }
        let now = Date(milliseconds: clock().milliseconds)
        let decision = AcquirerDecision.decide(
            facts, amount: submission.amount, amountLimit: configuration.amountLimit, now: now)
        let record = AuthorizationRecord(
            reference: reference, amount: submission.amount, currency: submission.currency, bin: facts.bin,
            last4: facts.last4, cvvPresent: facts.cvvMatches != nil, status: decision.status,
            authCode: decision.status == .approved ? Self.authCode() : nil,
            acquirerReference: "acq_" + Hex.encode(SecureRandom.bytes(12)), declineCode: decision.declineCode,
            createdAt: now)
        let stored: AuthorizationRecord
        do {
            stored = try await store.insert(record)
        } catch {
            logger.error("authorization could not be recorded", metadata: ["reference": "\(reference)"])
            throw .internalError
        }
        // A concurrent request with the same reference may have won the insert.
        guard stored.amount == submission.amount, stored.currency == submission.currency else {
            throw .referenceReused
        }
        logger.info(
            "authorization",
            metadata: [
                "reference": "\(reference)", "status": "\(stored.status.rawValue)",
                "decline_code": "\(stored.declineCode?.rawValue ?? "-")", "cvv_present": "\(stored.cvvPresent)",
                "latency_ms": "\((ContinuousClock.now - started).milliseconds)",
            ])
        return stored
    }

    /// The stored answer for `reference`.
    /// - Throws: ``AcquirerError`` 404 `not_found`.
    public func authorization(reference: String) async throws(AcquirerError) -> AuthorizationRecord {
        guard let record = try await stored(reference) else { throw .notFound }
        return record
    }

    /// Every record, oldest first (for reconciliation and tests).
    public func records() async throws -> [AuthorizationRecord] {
        try await store.records()
    }

    private func stored(_ reference: String) async throws(AcquirerError) -> AuthorizationRecord? {
        do {
            return try await store.record(reference: reference)
        } catch {
            logger.error("authorization store could not be read", metadata: ["reference": "\(reference)"])
            throw .internalError
        }
    }

    /// Opens the sealed card block into guarded memory and reads what the rules need from it.
    private func openCard(_ sealed: [UInt8]) throws(AcquirerError) -> CardBlock.Facts {
        let plaintext: SecretBytes
        do {
            plaintext = try sealed.withUnsafeBytes { try SealedBox.open($0, with: keyPair.keyPair) }
        } catch {
            throw .invalidCardBlock
        }
        defer { plaintext.wipe() }
        guard let facts = plaintext.withUnsafeBytes(CardBlock.facts(of:)) else { throw .invalidCard }
        return facts
    }

    /// 1 to 64 printable ASCII characters.
    static func isValidReference(_ reference: String) -> Bool {
        let bytes = reference.utf8
        return (1...64).contains(bytes.count) && bytes.allSatisfy { (0x20...0x7E).contains($0) }
    }

    /// Six random decimal digits.
    private static func authCode() -> String {
        let value = SecureRandom.uniform(1_000_000)
        let digits = String(value)
        return String(repeating: "0", count: 6 - digits.count) + digits
    }
}
