public import Foundation

/// The merchant of a card-network message.
public struct Merchant: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    /// Merchant category code (ISO 18245), four digits.
    public var mcc: String
    /// ISO 3166-1 alpha-2, capitals.
    public var country: String

    public init(id: String, name: String, mcc: String, country: String) {
        self.id = id
        self.name = name
        self.mcc = mcc
        self.country = country
    }
}

/// Why the network's authorization of a virtual card is declined. Stable codes, documented for
/// the network (docs/openapi.yaml).
public enum DeclineCode: String, Sendable, Hashable, Codable, CaseIterable {
    /// No card this vault issued has that PAN (decided inside the CDE).
    case cardNotFound = "card_not_found"
    case cardInactive = "card_inactive"
    case cardPaused = "card_paused"
    case cardClosed = "card_closed"
    /// Past the end of its expiry month.
    case cardExpired = "card_expired"
    /// The expiry or the CVV sent is not the card's (decided inside the CDE; one code for both, so
    /// that the expiry cannot be guessed apart from the CVV).
    case incorrectCVV = "incorrect_cvv"
    case insufficientFunds = "insufficient_funds"
    /// Over a spend limit; ``AuthorizationDecision/Decline/window`` says which.
    case spendLimitExceeded = "spend_limit_exceeded"
    case mccNotAllowed = "mcc_not_allowed"
    case countryNotAllowed = "country_not_allowed"
    /// A merchant-locked card used at another merchant than its first.
    case merchantLocked = "merchant_locked"
    /// A single-use card that was already approved once.
    case singleUseConsumed = "single_use_consumed"
    /// Another currency than the wallet's (cross-currency spending is not supported yet).
    case currencyNotSupported = "currency_not_supported"
}

/// The spend-limit window an authorization would exceed.
public enum LimitWindow: String, Sendable, Hashable, Codable, CaseIterable {
    case perTransaction = "per_transaction"
    case daily, monthly, lifetime
}

/// The decision on a card for an authorization, made outside the CDE from the token alone.
public enum AuthorizationDecision: Sendable, Hashable {
    public struct Decline: Sendable, Hashable, Codable {
        public var code: DeclineCode
        public var window: LimitWindow?

        public init(_ code: DeclineCode, window: LimitWindow? = nil) {
            self.code = code
            self.window = window
        }
    }

    /// Approved by the card's controls: the caller still holds the amount on the ledger (which
    /// may refuse it: `insufficient_funds`), and stores `card` as it becomes with the approval.
    case approve(card: VirtualCard)
    case decline(Decline)

    /// Decides on `card` for `amount` in `currency` at `merchant` at `now`, in this order: the
    /// state and expiry, the currency, the merchant lock, categories and countries, then the
    /// limits from the narrowest window to the widest. Pure: the store runs it inside the
    /// transaction that reads the card and writes the outcome, so that concurrent
    /// authorizations see each other's spending.
    /// - Parameter walletCurrency: the currency of the card's wallet.
    public static func decide(
        card: VirtualCard, walletCurrency: String, amount: Int64, currency: String, merchant: Merchant, now: Date
    ) -> AuthorizationDecision {
        precondition(amount > 0, "the network intake refuses amounts that are not positive")
        if let decline = stateDecline(of: card) { return .decline(decline) }
        if card.isExpired(at: now) { return .decline(Decline(.cardExpired)) }
        if currency != walletCurrency { return .decline(Decline(.currencyNotSupported)) }
        if card.kind == .merchantLocked, let locked = card.lockedMerchant, locked != merchant.id {
            return .decline(Decline(.merchantLocked))
        }
        let controls = card.controls
        if controls.blockedMCCs.contains(merchant.mcc)
            || (!controls.allowedMCCs.isEmpty && !controls.allowedMCCs.contains(merchant.mcc))
        {
            return .decline(Decline(.mccNotAllowed))
        }
        if !controls.allowedCountries.isEmpty && !controls.allowedCountries.contains(merchant.country) {
            return .decline(Decline(.countryNotAllowed))
        }
        let spent = card.spent.current(at: now)
        let checks: [(LimitWindow, Int64?, Int64)] = [
            (.perTransaction, controls.limits.perTransaction, 0), (.daily, controls.limits.daily, spent.daily),
            (.monthly, controls.limits.monthly, spent.monthly), (.lifetime, controls.limits.lifetime, spent.lifetime),
        ]
        for (window, limit, used) in checks {
            // `limit - used` cannot overflow: both are non-negative.
            if let limit, amount > limit - used { return .decline(Decline(.spendLimitExceeded, window: window)) }
        }
        var approved = card
        approved.spent = card.spent.adding(amount, at: now)
        switch card.kind {
        case .singleUse: approved.state = .closed
        case .merchantLocked: approved.lockedMerchant = card.lockedMerchant ?? merchant.id
        case .multiUse: break
        }
        return .approve(card: approved)
    }
}

extension AuthorizationDecision {
    /// Why a card in its state cannot spend whatever the message says, or `nil` for an active card
    /// with spending left. It comes before the CDE's expiry and CVV findings: a paused or closed card
    /// answers the same for right and wrong card data, so guessing at it learns nothing.
    public static func stateDecline(of card: VirtualCard) -> Decline? {
        if card.kind == .singleUse, card.spent.lifetime > 0 { return Decline(.singleUseConsumed) }
        switch card.state {
        case .closed: return Decline(.cardClosed)
        case .inactive: return Decline(.cardInactive)
        case .paused: return Decline(.cardPaused)
        case .active: return nil
        }
    }
}

extension SpendCounters {
    /// These counters with `amount` spent at `now`: windows that have passed start again from it.
    /// Saturates rather than traps: a limit has already bounded every counter that has one.
    public func adding(_ amount: Int64, at now: Date) -> SpendCounters {
        let today = UTCCalendar.components(of: now)
        let current = current(at: now)
        func plus(_ value: Int64) -> Int64 {
            let (sum, overflow) = value.addingReportingOverflow(amount)
            return overflow ? .max : sum
        }
        return SpendCounters(
            day: today.dayKey, dayAmount: plus(current.daily), month: today.monthKey,
            monthAmount: plus(current.monthly),
            lifetime: plus(current.lifetime))
    }

    /// These counters with `amount` given back (a reversal or an expired hold) that was spent at
    /// `spentAt`: only the windows it was counted in, if they are still the current ones; never
    /// below zero.
    public func subtracting(_ amount: Int64, spentAt: Date) -> SpendCounters {
        let then = UTCCalendar.components(of: spentAt)
        var counters = self
        if counters.day == then.dayKey { counters.dayAmount = max(0, counters.dayAmount - amount) }
        if counters.month == then.monthKey { counters.monthAmount = max(0, counters.monthAmount - amount) }
        counters.lifetime = max(0, counters.lifetime - amount)
        return counters
    }
}
