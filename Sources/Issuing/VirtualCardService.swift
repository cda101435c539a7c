public import CardTokens
public import Foundation
import Ledger
import SQLiteSupport
public import Wallet

/// A card to issue to a wallet.
public struct NewVirtualCard: Sendable, Hashable {
    public var kind: VirtualCard.Kind
    public var controls: SpendControls
    public var expiresInMonths: Int
    /// Issue it `active` instead of `inactive`.
    public var activate: Bool

    public init(
        kind: VirtualCard.Kind = .multiUse, controls: SpendControls = .init(),
        expiresInMonths: Int = IssueCardRequest.defaultExpiresInMonths, activate: Bool = false
    ) {
        self.kind = kind
        self.controls = controls
        self.expiresInMonths = expiresInMonths
        self.activate = activate
    }
}

/// A change of a card's state or controls; `nil` leaves a field as it is.
public struct VirtualCardChange: Sendable, Hashable {
    public var state: VirtualCard.State?
    /// Replaces the limits as a whole.
    public var limits: SpendLimits?
    public var allowedMCCs: [String]?
    public var blockedMCCs: [String]?
    public var allowedCountries: [String]?

    public init(
        state: VirtualCard.State? = nil, limits: SpendLimits? = nil, allowedMCCs: [String]? = nil,
        blockedMCCs: [String]? = nil, allowedCountries: [String]? = nil
    ) {
        self.state = state
        self.limits = limits
        self.allowedMCCs = allowedMCCs
        self.blockedMCCs = blockedMCCs
        self.allowedCountries = allowedCountries
    }

    /// The change for its Idempotency-Key: every field, in a fixed order.
    var idempotentDescription: String {
        [
            state?.rawValue ?? "-", limits.map(\.idempotentDescription) ?? "-", Self.list(allowedMCCs),
            Self.list(blockedMCCs), Self.list(allowedCountries),
        ].joined(separator: ";")
    }

    static func list(_ values: [String]?) -> String { values.map { $0.joined(separator: ",") } ?? "-" }
}

extension SpendLimits {
    var idempotentDescription: String {
        [perTransaction, daily, monthly, lifetime].map { $0.map(String.init) ?? "-" }.joined(separator: "/")
    }
}

/// Virtual cards: issued inside the vault (through ``CardIssuer``: the wallet side gets a token
/// and what may be shown of the card), kept here with their state and controls, activated,
/// paused and closed by the cardholder. Outside the CDE: this target cannot import the vault.
///
/// Every change takes an Idempotency-Key, whose outcome commits with the change (the wallet's
/// rules, shared through ``WalletService``).
public final class VirtualCardService: Sendable {
    let store: any IssuingStore
    let wallets: WalletService
    let issuer: (any CardIssuer)?
    let clock: @Sendable () -> Date

    /// - Parameter issuer: the vault's card issuing; `nil` refuses new cards with
    ///   `issuing_not_configured`.
    public init(
        store: any IssuingStore, wallets: WalletService, issuer: (any CardIssuer)?,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.store = store
        self.wallets = wallets
        self.issuer = issuer
        self.clock = { Date(milliseconds: clock().milliseconds) }
    }

    /// Issues a card to a wallet of `tenant`: the vault makes the PAN and its token; the card is
    /// stored here `inactive` (or `active` with `activate`).
    ///
    /// A retry with the same Idempotency-Key after a failure between the vault's commit and this
    /// one issues another card in the vault; the first one is never attached to a wallet, so it
    /// can never be used.
    /// - Throws: `wallet_not_found`, `invalid_spend_limits`, `invalid_mcc`, `invalid_country`,
    ///   `invalid_expires_in_months`, `issuing_not_configured`, or an idempotency error.
    public func issue(
        to walletID: String, _ request: NewVirtualCard, idempotency key: IdempotencyKey,
        tenant: String = Principal.defaultTenant, origin: String = "internal"
    ) async throws -> VirtualCard {
        let controls = request.controls
        let description = WalletService.describe(
            "issue_virtual_card", walletID, request.kind.rawValue, String(request.expiresInMonths),
            String(request.activate), controls.limits.idempotentDescription,
            VirtualCardChange.list(controls.allowedMCCs), VirtualCardChange.list(controls.blockedMCCs),
            VirtualCardChange.list(controls.allowedCountries))
        let now = clock()
        return try await wallets.idempotency.run(key, request: description, now: now) {
            (recorder: IdempotencyRules.Recorder<VirtualCard>) in
            // Issuing reaches the vault, so an earlier outcome is replayed before anything runs.
            if let stored = try await wallets.idempotency.storedOutcome(key, request: description, as: VirtualCard.self)
            {
                return try stored.get()
            }
            _ = try await wallets.walletCurrency(walletID, tenant: tenant)
            let controls = try request.controls.validated()
            guard IssueCardRequest.expiresInMonthsRange.contains(request.expiresInMonths) else {
                throw WalletError(.invalidExpiresInMonths, "expires_in_months must be 1 to 60")
            }
            guard let issuer else {
                throw WalletError(.issuingNotConfigured, "this service does not issue cards")
            }
            let metadata = try await issuer.issueCard(
                IssueCardRequest(expiresInMonths: request.expiresInMonths), by: .wallet(tenant: tenant),
                origin: origin)
            let card = VirtualCard(
                id: RandomID.make("vc", now: now), walletID: walletID, tenant: tenant, token: metadata.token,
                bin: metadata.bin, last4: metadata.last4, brand: metadata.brand, expMonth: metadata.expMonth,
                expYear: metadata.expYear, kind: request.kind, state: request.activate ? .active : .inactive,
                controls: controls, lockedMerchant: nil, spent: SpendCounters(), createdAt: now)
            try await store.insert(card) { card in [try recorder.write(.success(card))] }
            return card
        }
    }

    /// The card `id` of `tenant`.
    /// - Throws: `virtual_card_not_found` (also for another tenant's card).
    public func card(_ id: String, tenant: String = Principal.defaultTenant) async throws -> VirtualCard {
        guard let card = try await store.card(id), card.tenant == tenant else { throw Self.notFound }
        return card
    }

    /// The cards of a wallet of `tenant`, oldest first.
    /// - Throws: `wallet_not_found`.
    public func cards(of walletID: String, tenant: String = Principal.defaultTenant) async throws -> [VirtualCard] {
        _ = try await wallets.walletCurrency(walletID, tenant: tenant)
        return try await store.cards(of: walletID)
    }

    /// Activates a card (`inactive` or `paused` → `active`).
    /// - Throws: `virtual_card_not_found`, `card_closed`, or an idempotency error.
    public func activate(
        _ id: String, idempotency key: IdempotencyKey, tenant: String = Principal.defaultTenant
    ) async throws -> VirtualCard {
        try await change(id, VirtualCardChange(state: .active), idempotency: key, tenant: tenant)
    }

    /// Changes a card's state (`active`, `paused`, `closed`), limits or categories.
    /// - Throws: `virtual_card_not_found`, `card_closed` (a closed card never changes),
    ///   `invalid_state_transition`, `invalid_spend_limits`, `invalid_mcc`, `invalid_country`, or an
    ///   idempotency error.
    public func change(
        _ id: String, _ requested: VirtualCardChange, idempotency key: IdempotencyKey,
        tenant: String = Principal.defaultTenant
    ) async throws -> VirtualCard {
        let description = WalletService.describe("change_virtual_card", id, requested.idempotentDescription)
        return try await wallets.idempotency.run(key, request: description, now: clock()) {
            (recorder: IdempotencyRules.Recorder<VirtualCard>) in
            let controls = try SpendControls(
                limits: requested.limits ?? .init(), allowedMCCs: requested.allowedMCCs ?? [],
                blockedMCCs: requested.blockedMCCs ?? [], allowedCountries: requested.allowedCountries ?? []
            ).validated()
            let updated = try await store.update(
                id,
                change: { card in
                    guard card.tenant == tenant else { throw Self.notFound }
                    guard card.state != .closed else { throw Self.closed }
                    var card = card
                    if let state = requested.state {
                        guard card.state.canChange(to: state) else {
                            throw WalletError(
                                .invalidStateTransition, "the card cannot go from its state to the one asked for")
                        }
                        // Lifting a pause is what forgives wrong card data (the count pauses the
                        // card at its limit); nothing else resets it.
                        if card.state == .paused, state == .active { card.failedVerifications = 0 }
                        card.state = state
                    }
                    if requested.limits != nil { card.controls.limits = controls.limits }
                    if requested.allowedMCCs != nil { card.controls.allowedMCCs = controls.allowedMCCs }
                    if requested.blockedMCCs != nil { card.controls.blockedMCCs = controls.blockedMCCs }
                    if requested.allowedCountries != nil { card.controls.allowedCountries = controls.allowedCountries }
                    return card
                },
                recording: { card in [try recorder.write(.success(card))] })
            guard let updated else { throw Self.notFound }
            return updated
        }
    }

    static let notFound = WalletError(.virtualCardNotFound, "no virtual card with this id")
    static let closed = WalletError(.cardClosed, "the card is closed and cannot change")
}

extension SpendControls {
    /// The most entries a list of categories or countries may hold.
    static let maximumEntries = 200

    /// These controls with each list sorted and without repeats.
    /// - Throws: `invalid_spend_limits` (a limit ≤ 0), `invalid_mcc` (not four digits, or too
    ///   many), `invalid_country` (not two capital letters A–Z, or too many).
    func validated() throws(WalletError) -> SpendControls {
        let limits = [self.limits.perTransaction, self.limits.daily, self.limits.monthly, self.limits.lifetime]
        guard limits.allSatisfy({ ($0 ?? 1) > 0 }) else {
            throw WalletError(.invalidSpendLimits, "spend limits must be positive numbers of minor units")
        }
        func isMCC(_ code: String) -> Bool { code.utf8.count == 4 && code.utf8.allSatisfy { (48...57).contains($0) } }
        func isCountry(_ code: String) -> Bool {
            code.utf8.count == 2 && code.utf8.allSatisfy { (65...90).contains($0) }
        }
        for list in [allowedMCCs, blockedMCCs] {
            guard list.count <= Self.maximumEntries, list.allSatisfy(isMCC) else {
                throw WalletError(.invalidMCC, "merchant category codes are four digits, at most 200 per list")
            }
        }
        guard allowedCountries.count <= Self.maximumEntries, allowedCountries.allSatisfy(isCountry) else {
            throw WalletError(.invalidCountry, "countries are ISO 3166-1 alpha-2 codes in capitals, e.g. DE")
        }
        return SpendControls(
            limits: self.limits, allowedMCCs: Array(Set(allowedMCCs)).sorted(),
            blockedMCCs: Array(Set(blockedMCCs)).sorted(), allowedCountries: Array(Set(allowedCountries)).sorted())
    }
}
