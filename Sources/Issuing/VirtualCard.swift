public import CardTokens
public import Foundation

/// A card the vault issued, as the wallet side keeps it: the token, what may be shown of the
/// card (BIN, last four, expiry) and the controls the cardholder sets. Never a PAN or CVV.
public struct VirtualCard: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// Spends until closed, within its limits.
        case multiUse = "multi_use"
        /// Closes after its first approved authorization.
        case singleUse = "single_use"
        /// Locks to the merchant of its first approved authorization.
        case merchantLocked = "merchant_locked"
    }

    /// `inactive` (issued) → `active` ⇄ `paused`; any of them → `closed`, which is final. Expired
    /// is not a state: it follows from the expiry.
    public enum State: String, Sendable, Hashable, Codable, CaseIterable {
        case inactive, active, paused, closed

        /// Whether a card in this state may be put in `next` by the cardholder.
        public func canChange(to next: State) -> Bool {
            switch (self, next) {
            case (.closed, _): false
            case (_, .closed): true
            case (.inactive, .active), (.active, .paused), (.paused, .active): true
            default: self == next
            }
        }
    }

    public var id: String
    public var walletID: String
    public var tenant: String
    public var token: Token
    public var bin: String
    public var last4: String
    public var brand: CardBrand
    public var expMonth: Int
    public var expYear: Int
    public var kind: Kind
    public var state: State
    public var controls: SpendControls
    /// The merchant a merchant-locked card is locked to (set by its first approval).
    public var lockedMerchant: String?
    public var spent: SpendCounters
    /// Network authorizations whose expiry or CVV was wrong since the card was issued or last
    /// unpaused; at ``maximumFailedVerifications`` the card is paused, and only the cardholder's
    /// `active` (which sets this back to zero) lets it spend again. A right guess resets nothing:
    /// otherwise a guesser could keep just under the limit between the cardholder's purchases.
    public var failedVerifications: Int
    public var createdAt: Date

    /// Wrong expiries or CVVs that pause a card. One decline code answers both, so a guesser
    /// holding only the PAN has five tries at ~60 × 1,000 expiry–CVV pairs (1 in 12,000); one who
    /// also knows the expiry (a merchant that kept it) has 1 in 200. Each pause needs the
    /// cardholder to lift it, and shows in ``failedVerifications``.
    public static let maximumFailedVerifications = 5

    public init(
        id: String, walletID: String, tenant: String, token: Token, bin: String, last4: String, brand: CardBrand,
        expMonth: Int, expYear: Int, kind: Kind, state: State, controls: SpendControls, lockedMerchant: String?,
        spent: SpendCounters, failedVerifications: Int = 0, createdAt: Date
    ) {
        self.id = id
        self.walletID = walletID
        self.tenant = tenant
        self.token = token
        self.bin = bin
        self.last4 = last4
        self.brand = brand
        self.expMonth = expMonth
        self.expYear = expYear
        self.kind = kind
        self.state = state
        self.controls = controls
        self.lockedMerchant = lockedMerchant
        self.spent = spent
        self.failedVerifications = failedVerifications
        self.createdAt = createdAt
    }

    private enum CodingKeys: String, CodingKey {
        case id, walletID, tenant, token, bin, last4, brand, expMonth, expYear, kind, state, controls
        case lockedMerchant, spent, failedVerifications, createdAt
    }

    /// As synthesized, except that `failedVerifications` may be absent (outcomes stored for an
    /// Idempotency-Key before it existed): 0.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            id: try container.decode(String.self, forKey: .id),
            walletID: try container.decode(String.self, forKey: .walletID),
            tenant: try container.decode(String.self, forKey: .tenant),
            token: try container.decode(Token.self, forKey: .token),
            bin: try container.decode(String.self, forKey: .bin),
            last4: try container.decode(String.self, forKey: .last4),
            brand: try container.decode(CardBrand.self, forKey: .brand),
            expMonth: try container.decode(Int.self, forKey: .expMonth),
            expYear: try container.decode(Int.self, forKey: .expYear),
            kind: try container.decode(Kind.self, forKey: .kind),
            state: try container.decode(State.self, forKey: .state),
            controls: try container.decode(SpendControls.self, forKey: .controls),
            lockedMerchant: try container.decodeIfPresent(String.self, forKey: .lockedMerchant),
            spent: try container.decode(SpendCounters.self, forKey: .spent),
            failedVerifications: try container.decodeIfPresent(Int.self, forKey: .failedVerifications) ?? 0,
            createdAt: try container.decode(Date.self, forKey: .createdAt))
    }

    /// Whether the card is past the end of its expiry month at `now` (UTC).
    public func isExpired(at now: Date) -> Bool {
        let today = UTCCalendar.components(of: now)
        return (expYear, expMonth) < (today.year, today.month)
    }
}

/// What a card may spend, where. `nil` and empty mean "no limit" and "any".
public struct SpendControls: Sendable, Hashable, Codable {
    public var limits: SpendLimits
    /// Merchant category codes (ISO 18245, four digits) the card may be used at; empty: any.
    public var allowedMCCs: [String]
    /// Merchant category codes the card is refused at, whatever `allowedMCCs` says.
    public var blockedMCCs: [String]
    /// Merchant countries (ISO 3166-1 alpha-2) the card may be used in; empty: any.
    public var allowedCountries: [String]

    public init(
        limits: SpendLimits = .init(), allowedMCCs: [String] = [], blockedMCCs: [String] = [],
        allowedCountries: [String] = []
    ) {
        self.limits = limits
        self.allowedMCCs = allowedMCCs
        self.blockedMCCs = blockedMCCs
        self.allowedCountries = allowedCountries
    }
}

/// Limits in minor units of the wallet's currency. `lifetime` is how a prepaid card's balance
/// is expressed.
public struct SpendLimits: Sendable, Hashable, Codable {
    public var perTransaction: Int64?
    /// Per UTC day.
    public var daily: Int64?
    /// Per UTC calendar month.
    public var monthly: Int64?
    public var lifetime: Int64?

    public init(perTransaction: Int64? = nil, daily: Int64? = nil, monthly: Int64? = nil, lifetime: Int64? = nil) {
        self.perTransaction = perTransaction
        self.daily = daily
        self.monthly = monthly
        self.lifetime = lifetime
    }
}

/// What a card has spent in its current windows. A window's amount counts only while the window
/// is current: a counter of an earlier day or month reads as zero.
public struct SpendCounters: Sendable, Hashable, Codable {
    /// The UTC day (`yyyymmdd`) `dayAmount` belongs to.
    public var day: Int
    public var dayAmount: Int64
    /// The UTC month (`yyyymm`) `monthAmount` belongs to.
    public var month: Int
    public var monthAmount: Int64
    public var lifetime: Int64

    public init(day: Int = 0, dayAmount: Int64 = 0, month: Int = 0, monthAmount: Int64 = 0, lifetime: Int64 = 0) {
        self.day = day
        self.dayAmount = dayAmount
        self.month = month
        self.monthAmount = monthAmount
        self.lifetime = lifetime
    }

    /// The amounts as of `now`: zero for a window that has passed.
    public func current(at now: Date) -> (daily: Int64, monthly: Int64, lifetime: Int64) {
        let today = UTCCalendar.components(of: now)
        return (
            day == today.dayKey ? dayAmount : 0, month == today.monthKey ? monthAmount : 0, lifetime
        )
    }
}

/// Day and month keys in UTC, the windows of the spend limits.
enum UTCCalendar {
    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }()

    struct Today {
        var year: Int
        var month: Int
        var day: Int
        var dayKey: Int { year * 10_000 + month * 100 + day }
        var monthKey: Int { year * 100 + month }
    }

    static func components(of date: Date) -> Today {
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return Today(year: parts.year ?? 1970, month: parts.month ?? 1, day: parts.day ?? 1)
    }
}
