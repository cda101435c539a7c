import CardTokens
public import Foundation
import SQLiteSupport
public import Wallet

/// The card network's messages about virtual cards, on the wallet side: decisions from the
/// token alone, holds on the ledger, outcomes stored by network reference. The CDE's intake
/// (PAN in) resolves the card and checks expiry and CVV before it calls here.
public final class CardNetworkService: Sendable {
    let store: any IssuingStore
    let clock: @Sendable () -> Date

    public init(store: any IssuingStore, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.clock = { Date(milliseconds: clock().milliseconds) }
    }

    /// Decides an authorization and, if approved, holds its amount on the card's wallet, in one
    /// commit with the outcome; a retry with the same network reference answers the first
    /// decision.
    /// - Throws: `invalid_network_message` for a malformed request (before anything is stored),
    ///   `network_reference_reused` for a known reference with other fields.
    public func authorize(_ request: CardAuthorizationRequest) async throws -> CardAuthorization {
        try Self.validate(request)
        let now = clock()
        return try await store.authorize(
            request, id: RandomID.make("auth", now: now), authCode: Self.authCode(), at: now
        ) { card, walletCurrency in
            AuthorizationDecision.decide(
                card: card, walletCurrency: walletCurrency, amount: request.amount, currency: request.currency,
                merchant: request.merchant, now: now)
        }
    }

    /// Books (part of) an approved authorization: full, partial, or several partials up to the
    /// authorized amount.
    /// - Throws: `invalid_network_message`, `authorization_not_found`, `authorization_released`,
    ///   `amount_exceeds_authorization`, `network_reference_reused`.
    public func clear(_ request: ClearingRequest) async throws -> CardTransaction {
        try Self.validate(reference: request.networkReference, amount: request.amount)
        let now = clock()
        return try await store.clear(request, id: RandomID.make("clr", now: now), at: now)
    }

    /// Gives back (part of) what an authorization still holds; all of it without an amount.
    /// - Throws: as ``clear(_:)``.
    public func reverse(_ request: ReversalRequest) async throws -> CardTransaction {
        try Self.validate(reference: request.networkReference, amount: request.amount ?? 1)
        let now = clock()
        return try await store.reverse(request, id: RandomID.make("rev", now: now), at: now)
    }

    /// Credits a merchant's refund of a cleared purchase to the card's wallet.
    /// - Throws: `invalid_network_message`, `authorization_not_found`, `currency_mismatch`,
    ///   `amount_exceeds_authorization`, `network_reference_reused`.
    public func refund(_ request: RefundRequest) async throws -> CardTransaction {
        try Self.validate(
            CardAuthorizationRequest(
                networkReference: request.networkReference, token: nil, cdeDecline: .cardNotFound,
                amount: request.amount, currency: request.currency, merchant: request.merchant))
        let now = clock()
        return try await store.refund(request, id: RandomID.make("ref", now: now), at: now)
    }

    /// Releases the holds of authorizations approved more than `holdDuration` ago and neither
    /// cleared nor reversed in full; returns how many.
    @discardableResult
    public func expireHolds(olderThan holdDuration: TimeInterval) async throws -> Int {
        let now = clock()
        var total = 0
        while true {
            let count = try await store.expireHolds(approvedBefore: now.addingTimeInterval(-holdDuration), at: now)
            total += count
            if count == 0 { return total }
        }
    }

    /// A card's history, oldest first, after sequence `after`.
    public func transactions(of cardID: String, after: Int64 = 0, limit: Int = 100) async throws -> [CardTransaction] {
        try await store.transactions(of: cardID, after: after, limit: limit)
    }

    static func validate(reference: String, amount: Int64) throws(WalletError) {
        guard (1...64).contains(reference.utf8.count), reference.utf8.allSatisfy({ (32...126).contains($0) }),
            !CardNumberDetector.containsCardNumber(reference), amount > 0
        else {
            throw WalletError(
                .invalidNetworkMessage, "network_reference 1 to 64 printable characters, amount positive")
        }
    }

    /// The answer already stored for an authorization's network reference, looked up before its
    /// card data is checked, so that a retry (or a probe) with other card data learns nothing new.
    /// - Throws: `invalid_network_message`; `network_reference_reused` for the same reference with
    ///   another amount, currency or merchant.
    public func storedAuthorization(_ request: CardAuthorizationRequest) async throws -> CardAuthorization? {
        try Self.validate(reference: request.networkReference, amount: request.amount)
        return try await store.storedAuthorization(
            reference: request.networkReference, bound: request.idempotentDescription)
    }

    /// Six characters of `0-9A-Z`, as networks print them.
    static func authCode() -> String {
        let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        var generator = SystemRandomNumberGenerator()
        return String((0..<6).map { _ in alphabet[Int(generator.next(upperBound: UInt64(alphabet.count)))] })
    }

    /// Checks an authorization's fields other than its card data.
    /// - Throws: `invalid_network_message` naming the rules.
    public static func validate(_ request: CardAuthorizationRequest) throws(WalletError) {
        func printable(_ text: String, _ range: ClosedRange<Int>) -> Bool {
            range.contains(text.utf8.count) && text.utf8.allSatisfy { (32...126).contains($0) }
        }
        let merchant = request.merchant
        guard printable(request.networkReference, 1...64), request.amount > 0,
            request.currency.utf8.count == 3, request.currency.utf8.allSatisfy({ (65...90).contains($0) }),
            printable(merchant.id, 1...64), printable(merchant.name, 1...128),
            merchant.mcc.utf8.count == 4, merchant.mcc.utf8.allSatisfy({ (48...57).contains($0) }),
            merchant.country.utf8.count == 2, merchant.country.utf8.allSatisfy({ (65...90).contains($0) }),
            request.token != nil || request.cdeDecline != nil,
            // wallet.db is outside the CDE: no field the network sends may carry a card number there.
            ![request.networkReference, merchant.id, merchant.name].contains(
                where: CardNumberDetector.containsCardNumber)
        else {
            throw WalletError(
                .invalidNetworkMessage,
                "network_reference and merchant id 1 to 64 printable characters, merchant name 1 to 128, mcc four "
                    + "digits, country and currency in capitals, amount positive")
        }
    }
}
