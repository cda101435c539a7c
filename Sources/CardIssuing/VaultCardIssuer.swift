import Audit
public import CardTokens
public import Foundation
public import Logging
public import TokenVault
import VaultCrypto

/// Issues virtual cards inside the vault (CardTokens' ``CardIssuer``): a PAN under the issuing
/// BIN that equals no card the vault holds, tokenized for the principal's tenant, with a CVV
/// derived under the card-verification key and never stored (docs/CRYPTO.md §21). What leaves
/// is token metadata only; the PAN and CVV stay inside the CDE.
public final class VaultCardIssuer: CardIssuer {
    public var issuingBIN: String { numbers.bin }
    /// The length of the PANs issued, 16 to 19.
    public var panLength: Int { numbers.length }

    /// The BIN and length used when none is configured (see ``CardNumberGenerator/defaultBIN``).
    public static let defaultBIN = CardNumberGenerator.defaultBIN
    public static let defaultPANLength = CardNumberGenerator.defaultLength
    /// Each PAN drawn is new with a probability near one while the BIN's space is sparsely used;
    /// sixteen draws all meeting stored cards means the space is (nearly) full, not bad luck.
    package static let defaultMaximumAttempts = 16

    /// Logged (at debug level, without the number) for each draw that met a stored card.
    static let takenNumberMessage: Logger.Message = "the card number drawn is in the vault already; drawing another"

    let tokens: TokenVault
    private let numbers: CardNumberGenerator
    private let maximumAttempts: Int
    private let logger: Logger
    private let clock: @Sendable () -> Date

    /// - Throws: ``VaultError`` `invalid_argument` for a BIN that is not 6 or 8 digits or a length
    ///   outside 16…19.
    public convenience init(
        tokens: TokenVault, bin: String = defaultBIN, panLength: Int = defaultPANLength, logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        try self.init(
            tokens: tokens, numbers: CardNumberGenerator(bin: bin, length: panLength), logger: logger, clock: clock)
    }

    /// Checks a BIN and PAN length as ``init(tokens:bin:panLength:logger:clock:)`` does.
    /// - Throws: ``VaultError`` `invalid_argument` naming the rule that failed.
    public static func checkConfiguration(bin: String, panLength: Int) throws {
        _ = try CardNumberGenerator(bin: bin, length: panLength)
    }

    /// The test seam: the number generator (a tiny digit space) and the attempt bound.
    package init(
        tokens: TokenVault, numbers: CardNumberGenerator, maximumAttempts: Int = defaultMaximumAttempts,
        logger: Logger, clock: @escaping @Sendable () -> Date
    ) {
        self.tokens = tokens
        self.numbers = numbers
        self.maximumAttempts = maximumAttempts
        self.logger = logger
        self.clock = clock
    }

    public func issueCard(
        _ request: IssueCardRequest, by principal: Principal, origin: String
    ) async throws -> CardMetadata {
        guard IssueCardRequest.expiresInMonthsRange.contains(request.expiresInMonths) else {
            throw VaultError(.invalidArgument, "expires_in_months must be 1 to 60")
        }
        let now = clock()
        let expiry = Self.expiry(monthsAfter: request.expiresInMonths, now: now)
        let cardVerificationKey = try await tokens.activeCardVerificationKey().version
        for _ in 0..<maximumAttempts {
            let card = try numbers.card(expMonth: expiry.month, expYear: expiry.year, now: now)
            let outcome = try await tokens.issue(
                card, format: request.format, cardVerificationKey: cardVerificationKey, by: principal
            ) { token in
                AuditEvent(
                    actor: principal.auditActor, type: "card.issue", time: now, outcome: .success, origin: origin,
                    objects: [token.rawValue, "tenant:\(principal.tenant)"],
                    detail: "bin=\(card.bin) cvk_version=\(cardVerificationKey)")
            }
            if case .issued(let metadata) = outcome {
                logger.info("card issued", metadata: ["token": "\(metadata.token)", "tenant": "\(principal.tenant)"])
                return metadata
            }
            logger.debug(Self.takenNumberMessage)
        }
        logger.error(
            "card issuing found no unused card number",
            metadata: ["bin": "\(numbers.bin)", "attempts": "\(maximumAttempts)"])
        throw VaultError(
            .panSpaceExhausted,
            "no unused card number under the issuing BIN after \(maximumAttempts) attempts; configure another BIN")
    }

    /// The expiry of a card issued at `now` valid for `months`: the end of the month that many
    /// months after the current one (UTC). A card is valid through its expiry month, so the
    /// month and year are all there is to store.
    static func expiry(monthsAfter months: Int, now: Date) -> (month: Int, year: Int) {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let current = calendar.dateComponents([.year, .month], from: now)
        let index = current.year! * 12 + (current.month! - 1) + months
        return (index % 12 + 1, index / 12)
    }

    /// Hands `body` the CVV of `token`, a card this vault issued in `tenant`, as ASCII digits in
    /// a buffer wiped when `body` returns: for the cardholder's reveal and the network's CVV
    /// check. Package level in a CDE module: the targets outside the CDE cannot import it (the
    /// module-graph test); nothing of it is logged.
    /// - Throws: ``VaultError`` `token_not_found` if `token` is not an issued card of `tenant`.
    package func withCVV<R>(
        of token: Token, tenant: String, _ body: (_ cvvDigits: UnsafeBufferPointer<UInt8>) throws -> R
    ) async throws -> R {
        try await tokens.withIssuedCard(token, tenant: tenant) { card, key in
            let cvv = SecretBytes(zeroedCount: CardVerificationValue.digitCount, protection: .wipedOnRelease)
            defer { cvv.wipe() }
            return try cvv.withUnsafeMutableBytes { buffer in
                let digits = buffer.bindMemory(to: UInt8.self)
                CardVerificationValue.derive(
                    panDigits: card.panDigits, expMonth: card.expMonth, expYear: card.expYear, key: key, into: digits)
                return try body(UnsafeBufferPointer(digits))
            }
        }
    }
}
