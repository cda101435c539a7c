public import Foundation

/// What an account allows.
public struct AccountFlags: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }

    /// Debits (posted and pending) may never exceed posted credits: a wallet cannot overdraw.
    public static let debitsMustNotExceedCredits = AccountFlags(rawValue: 1 << 0)
    /// Credits (posted and pending) may never exceed posted debits (e.g. a receivable).
    public static let creditsMustNotExceedDebits = AccountFlags(rawValue: 1 << 1)
}

/// The four running totals of an account, in minor units (TigerBeetle's model).
public struct Balances: Sendable, Hashable, Codable {
    public var debitsPosted: Int64 = 0
    public var creditsPosted: Int64 = 0
    public var debitsPending: Int64 = 0
    public var creditsPending: Int64 = 0

    public init(debitsPosted: Int64 = 0, creditsPosted: Int64 = 0, debitsPending: Int64 = 0, creditsPending: Int64 = 0)
    {
        self.debitsPosted = debitsPosted
        self.creditsPosted = creditsPosted
        self.debitsPending = debitsPending
        self.creditsPending = creditsPending
    }

    /// Credits minus debits, posted only (a wallet's balance).
    public var posted: Int64 { creditsPosted - debitsPosted }
    /// Credits minus debits still on hold.
    public var pending: Int64 { creditsPending - debitsPending }
    /// What can be spent now: the posted balance less debits on hold.
    public var available: Int64 { creditsPosted - debitsPosted - debitsPending }
}

/// A ledger account.
public struct Account: Sendable, Hashable, Codable {
    public var id: String
    public var currency: Currency
    public var flags: AccountFlags
    public var balances: Balances
    public var createdAt: Date

    public init(id: String, currency: Currency, flags: AccountFlags, balances: Balances = .init(), createdAt: Date) {
        self.id = id
        self.currency = currency
        self.flags = flags
        self.balances = balances
        self.createdAt = createdAt
    }
}
