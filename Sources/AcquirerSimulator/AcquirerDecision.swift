import Foundation

/// What the simulator decides for a card, by rule. The first rule that matches wins, in this order:
///
/// 1. PAN `4000000000000002` → declined `do_not_honor`.
/// 2. PAN `4000000000009995` → declined `insufficient_funds`.
/// 3. Expiry month before the current month (UTC) → declined `expired_card`.
/// 4. Amount over the configured limit (``AcquirerConfiguration/amountLimit``, default 1,000,000
///    minor units) → declined `amount_limit_exceeded`.
/// 5. A CVV that is present and not `737` (`7373` on four-digit-CVV cards such as Amex) →
///    declined `incorrect_cvv`. An absent CVV is accepted (a stored-credential,
///    merchant-initiated charge).
/// 6. Otherwise approved, with a random six-digit authorization code.
public struct AcquirerDecision: Sendable, Hashable {
    /// Approved or declined.
    public enum Status: String, Sendable, Hashable, Codable {
        case approved, declined
    }

    /// Why a card was declined.
    public enum DeclineCode: String, Sendable, Hashable, Codable, CaseIterable {
        case doNotHonor = "do_not_honor"
        case insufficientFunds = "insufficient_funds"
        case incorrectCVV = "incorrect_cvv"
        case expiredCard = "expired_card"
        case amountLimitExceeded = "amount_limit_exceeded"
    }

    public var status: Status
    public var declineCode: DeclineCode?

    public static let approved = AcquirerDecision(status: .approved, declineCode: nil)

    public static func declined(_ code: DeclineCode) -> AcquirerDecision {
        AcquirerDecision(status: .declined, declineCode: code)
    }

    /// The rules above, applied to what the card block said and the amount.
    static func decide(_ card: CardBlock.Facts, amount: Int64, amountLimit: Int64, now: Date) -> AcquirerDecision {
        switch card.testCard {
        case .doNotHonor?: return .declined(.doNotHonor)
        case .insufficientFunds?: return .declined(.insufficientFunds)
        case nil: break
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let today = calendar.dateComponents([.year, .month], from: now)
        if let year = today.year, let month = today.month,
            card.expYear < year || (card.expYear == year && card.expMonth < month)
        {
            return .declined(.expiredCard)
        }
        if amount > amountLimit { return .declined(.amountLimitExceeded) }
        if card.cvvMatches == false { return .declined(.incorrectCVV) }
        return .approved
    }
}
