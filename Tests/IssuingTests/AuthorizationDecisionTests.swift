import CardTokens
import Foundation
import Issuing
import Testing

/// The decision the wallet side makes for the card network, from the token alone.
@Suite("Authorization decisions")
struct AuthorizationDecisionTests {
    /// 2026-06-30T23:59:59Z: the last second of a day and of a month.
    static let june30 = Date(timeIntervalSince1970: 1_782_863_999)
    static let shop = Merchant(id: "m-1", name: "Corner shop", mcc: "5411", country: "DE")

    static func card(
        kind: VirtualCard.Kind = .multiUse, state: VirtualCard.State = .active, controls: SpendControls = .init(),
        spent: SpendCounters = .init(), lockedMerchant: String? = nil, expMonth: Int = 12, expYear: Int = 2029
    ) -> VirtualCard {
        VirtualCard(
            id: "vc_1", walletID: "wal_1", tenant: "default", token: Token(unchecked: "tok_x"), bin: "999999",
            last4: "0001", brand: .unknown, expMonth: expMonth, expYear: expYear, kind: kind, state: state,
            controls: controls, lockedMerchant: lockedMerchant, spent: spent, createdAt: june30)
    }

    static func decide(
        _ card: VirtualCard, amount: Int64 = 1_000, currency: String = "EUR", merchant: Merchant = shop,
        at now: Date = june30
    ) -> AuthorizationDecision {
        AuthorizationDecision.decide(
            card: card, walletCurrency: "EUR", amount: amount, currency: currency, merchant: merchant, now: now)
    }

    static func declined(_ decision: AuthorizationDecision) -> AuthorizationDecision.Decline? {
        if case .decline(let decline) = decision { return decline }
        return nil
    }

    static func approved(_ decision: AuthorizationDecision) -> VirtualCard? {
        if case .approve(let card) = decision { return card }
        return nil
    }

    @Test("Each decline code the wallet side decides, for the reason it names")
    func declineCodes() {
        let cases: [(VirtualCard, Merchant, String, DeclineCode)] = [
            (Self.card(state: .inactive), Self.shop, "EUR", .cardInactive),
            (Self.card(state: .paused), Self.shop, "EUR", .cardPaused),
            (Self.card(state: .closed), Self.shop, "EUR", .cardClosed),
            (Self.card(expMonth: 5, expYear: 2026), Self.shop, "EUR", .cardExpired),
            (Self.card(), Self.shop, "USD", .currencyNotSupported),
            (Self.card(kind: .merchantLocked, lockedMerchant: "m-2"), Self.shop, "EUR", .merchantLocked),
            (
                Self.card(kind: .singleUse, state: .closed, spent: SpendCounters(lifetime: 500)), Self.shop, "EUR",
                .singleUseConsumed
            ),
            (Self.card(controls: SpendControls(blockedMCCs: ["5411"])), Self.shop, "EUR", .mccNotAllowed),
            (Self.card(controls: SpendControls(allowedMCCs: ["5812"])), Self.shop, "EUR", .mccNotAllowed),
            (Self.card(controls: SpendControls(allowedCountries: ["FR"])), Self.shop, "EUR", .countryNotAllowed),
        ]
        for (card, merchant, currency, expected) in cases {
            #expect(
                Self.declined(Self.decide(card, currency: currency, merchant: merchant))?.code == expected,
                "\(expected)")
        }
        // Blocked wins over allowed.
        let both = Self.card(controls: SpendControls(allowedMCCs: ["5411"], blockedMCCs: ["5411"]))
        #expect(Self.declined(Self.decide(both))?.code == .mccNotAllowed)
    }

    @Test("Limits are checked from the narrowest window to the widest, at their edges")
    func limits() {
        let limits = SpendLimits(perTransaction: 1_000, daily: 3_000, monthly: 5_000, lifetime: 9_000)
        let today = SpendCounters(
            day: 20_260_630, dayAmount: 2_000, month: 202_606, monthAmount: 4_500, lifetime: 8_500)
        let card = Self.card(controls: SpendControls(limits: limits), spent: today)
        // Exactly at the per-transaction limit passes it; one more does not.
        #expect(Self.declined(Self.decide(card, amount: 1_001))?.window == .perTransaction)
        // 1,000 fits today (2,000 + 1,000 = 3,000) but not this month (4,500 + 1,000 > 5,000).
        #expect(Self.declined(Self.decide(card, amount: 1_000))?.window == .monthly)
        #expect(Self.declined(Self.decide(card, amount: 1_000))?.code == .spendLimitExceeded)
        // 500 fits the month exactly and the lifetime exactly.
        let approved = Self.approved(Self.decide(card, amount: 500))
        #expect(
            approved?.spent
                == SpendCounters(day: 20_260_630, dayAmount: 2_500, month: 202_606, monthAmount: 5_000, lifetime: 9_000)
        )
        // One second later it is July: the day and month start again, the lifetime does not.
        let july1 = Self.june30.addingTimeInterval(1)
        #expect(Self.declined(Self.decide(card, amount: 600, at: july1))?.window == .lifetime)
        let fresh = Self.approved(Self.decide(card, amount: 500, at: july1))
        #expect(
            fresh?.spent
                == SpendCounters(day: 20_260_701, dayAmount: 500, month: 202_607, monthAmount: 500, lifetime: 9_000))
        // A daily limit alone, with yesterday's spending: only today's counts.
        let daily = Self.card(
            controls: SpendControls(limits: SpendLimits(daily: 1_000)),
            spent: SpendCounters(day: 20_260_629, dayAmount: 1_000, month: 202_606, monthAmount: 1_000, lifetime: 1_000)
        )
        #expect(Self.approved(Self.decide(daily, amount: 1_000)) != nil)
        #expect(Self.declined(Self.decide(daily, amount: 1_001))?.window == .daily)
    }

    @Test("A single-use card closes with its approval; a merchant-locked card locks to its first merchant")
    func cardTypes() {
        let single = Self.approved(Self.decide(Self.card(kind: .singleUse)))
        #expect(single?.state == .closed)
        #expect(single.map { Self.declined(Self.decide($0))?.code } == .singleUseConsumed)

        let locked = Self.approved(Self.decide(Self.card(kind: .merchantLocked)))
        #expect(locked?.lockedMerchant == "m-1")
        #expect(locked.flatMap { Self.approved(Self.decide($0)) } != nil, "the same merchant again")
        let elsewhere = Merchant(id: "m-2", name: "Other", mcc: "5411", country: "DE")
        #expect(locked.map { Self.declined(Self.decide($0, merchant: elsewhere))?.code } == .merchantLocked)

        let multi = Self.approved(Self.decide(Self.card()))
        #expect(multi?.state == .active)
        #expect(multi?.lockedMerchant == nil)
    }

    @Test("A card expires after the last second of its expiry month (UTC)")
    func expiry() {
        let card = Self.card(expMonth: 6, expYear: 2026)
        #expect(Self.approved(Self.decide(card)) != nil)
        #expect(Self.declined(Self.decide(card, at: Self.june30.addingTimeInterval(1)))?.code == .cardExpired)
    }
}
