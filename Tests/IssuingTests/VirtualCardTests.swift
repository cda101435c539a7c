import CardTokens
import Foundation
import GRDB
import Issuing
import Ledger
import Synchronization
import Testing
import VaultTestSupport
import Wallet

@Suite("Virtual cards in the wallet", .timeLimit(.minutes(2)))
struct VirtualCardTests {
    @Test("Issuing stores the vault's token and what may be shown, inactive, with the controls asked for")
    func issue() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            let controls = SpendControls(
                limits: SpendLimits(perTransaction: 5_000, daily: 10_000), allowedMCCs: ["5411", "5812", "5411"],
                blockedMCCs: ["7995"], allowedCountries: ["FR", "DE"])
            let card = try await sandbox.cards.issue(
                to: wallet.id, NewVirtualCard(kind: .singleUse, controls: controls, expiresInMonths: 12),
                idempotency: sandbox.freshKey())
            #expect(card.id.hasPrefix("vc_"))
            #expect(card.walletID == wallet.id)
            #expect(card.state == .inactive)
            #expect(card.kind == .singleUse)
            #expect(card.bin == "999999")
            #expect(card.controls.allowedMCCs == ["5411", "5812"])
            #expect(card.controls.allowedCountries == ["DE", "FR"])
            #expect(card.controls.limits == SpendLimits(perTransaction: 5_000, daily: 10_000))
            #expect(card.spent == SpendCounters())
            #expect(sandbox.issuer.requests == [IssueCardRequest(expiresInMonths: 12)])
            #expect(try await sandbox.cards.card(card.id) == card)
            #expect(try await sandbox.cards.cards(of: wallet.id) == [card])
        }
    }

    @Test("A retry with the same Idempotency-Key returns the same card and issues nothing more")
    func idempotentIssue() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            let key = try sandbox.freshKey()
            let first = try await sandbox.cards.issue(to: wallet.id, NewVirtualCard(), idempotency: key)
            let again = try await sandbox.cards.issue(to: wallet.id, NewVirtualCard(), idempotency: key)
            #expect(again == first)
            #expect(sandbox.issuer.requests.count == 1)
            let code = await walletCode {
                try await sandbox.cards.issue(to: wallet.id, NewVirtualCard(kind: .singleUse), idempotency: key)
            }
            #expect(code == .idempotencyKeyReused)
        }
    }

    @Test("Bad controls, expiry, wallet or a missing issuer are refused before the vault is asked")
    func refusals() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            let cases: [(NewVirtualCard, WalletError.Code)] = [
                (NewVirtualCard(controls: SpendControls(limits: SpendLimits(daily: 0))), .invalidSpendLimits),
                (NewVirtualCard(controls: SpendControls(limits: SpendLimits(lifetime: -5))), .invalidSpendLimits),
                (NewVirtualCard(controls: SpendControls(allowedMCCs: ["541"])), .invalidMCC),
                (NewVirtualCard(controls: SpendControls(blockedMCCs: ["54a1"])), .invalidMCC),
                (
                    NewVirtualCard(controls: SpendControls(allowedMCCs: (0..<201).map { String(format: "%04d", $0) })),
                    .invalidMCC
                ),
                (NewVirtualCard(controls: SpendControls(allowedCountries: ["fr"])), .invalidCountry),
                (NewVirtualCard(controls: SpendControls(allowedCountries: ["FRA"])), .invalidCountry),
                (NewVirtualCard(expiresInMonths: 0), .invalidExpiresInMonths),
                (NewVirtualCard(expiresInMonths: 61), .invalidExpiresInMonths),
            ]
            for (request, expected) in cases {
                let code = await walletCode {
                    try await sandbox.cards.issue(to: wallet.id, request, idempotency: sandbox.freshKey())
                }
                #expect(code == expected, "\(request)")
            }
            let unknown = await walletCode {
                try await sandbox.cards.issue(to: "wal_nope", NewVirtualCard(), idempotency: sandbox.freshKey())
            }
            #expect(unknown == .walletNotFound)
            let otherTenant = await walletCode {
                try await sandbox.cards.issue(
                    to: wallet.id, NewVirtualCard(), idempotency: sandbox.freshKey(), tenant: "other")
            }
            #expect(otherTenant == .walletNotFound)
            #expect(sandbox.issuer.requests.isEmpty)
        }
        try await withCards(issuer: false) { sandbox in
            let wallet = try await sandbox.wallet()
            let code = await walletCode {
                try await sandbox.cards.issue(to: wallet.id, NewVirtualCard(), idempotency: sandbox.freshKey())
            }
            #expect(code == .issuingNotConfigured)
        }
    }

    @Test("inactive → active ⇄ paused → closed; closed is final; another tenant finds no card")
    func lifecycle() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            let card = try await sandbox.cards.issue(to: wallet.id, NewVirtualCard(), idempotency: sandbox.freshKey())
            let pauseInactive = await walletCode {
                try await sandbox.cards.change(
                    card.id, VirtualCardChange(state: .paused), idempotency: sandbox.freshKey())
            }
            #expect(pauseInactive == .invalidStateTransition)
            #expect(try await sandbox.cards.activate(card.id, idempotency: sandbox.freshKey()).state == .active)
            let paused = try await sandbox.cards.change(
                card.id, VirtualCardChange(state: .paused), idempotency: sandbox.freshKey())
            #expect(paused.state == .paused)
            let resumed = try await sandbox.cards.change(
                card.id, VirtualCardChange(state: .active, limits: SpendLimits(monthly: 90_000)),
                idempotency: sandbox.freshKey())
            #expect(resumed.state == .active)
            #expect(resumed.controls.limits == SpendLimits(monthly: 90_000))
            let otherTenant = await walletCode {
                try await sandbox.cards.change(
                    card.id, VirtualCardChange(state: .closed), idempotency: sandbox.freshKey(), tenant: "other")
            }
            #expect(otherTenant == .virtualCardNotFound)
            let lookup = await walletCode { try await sandbox.cards.card(card.id, tenant: "other") }
            #expect(lookup == .virtualCardNotFound)
            let closed = try await sandbox.cards.change(
                card.id, VirtualCardChange(state: .closed), idempotency: sandbox.freshKey())
            #expect(closed.state == .closed)
            for change in [
                VirtualCardChange(state: .active), VirtualCardChange(state: .closed),
                VirtualCardChange(limits: SpendLimits(daily: 10)),
            ] {
                let code = await walletCode {
                    try await sandbox.cards.change(card.id, change, idempotency: sandbox.freshKey())
                }
                #expect(code == .cardClosed)
            }
            let activate = await walletCode {
                try await sandbox.cards.activate(card.id, idempotency: sandbox.freshKey())
            }
            #expect(activate == .cardClosed)
            #expect(try await sandbox.cards.card(card.id).state == .closed)
        }
    }

    @Test("Concurrent changes of one card are serialised: each sees the one before")
    func concurrentChanges() async throws {
        try await withCards { sandbox in
            let wallet = try await sandbox.wallet()
            let card = try await sandbox.cards.issue(
                to: wallet.id, NewVirtualCard(activate: true), idempotency: sandbox.freshKey())
            // 32 pauses and 32 closes at once: exactly one close succeeds, the card ends closed, and
            // every change after that close is refused as closed.
            let outcomes = try await withThrowingTaskGroup(of: (close: Bool, error: WalletError.Code?).self) { group in
                for index in 0..<64 {
                    let close = index % 2 == 1
                    group.addTask {
                        do {
                            _ = try await sandbox.cards.change(
                                card.id, VirtualCardChange(state: close ? .closed : .paused),
                                idempotency: sandbox.freshKey())
                            return (close, nil)
                        } catch let error as WalletError {
                            return (close, error.code)
                        }
                    }
                }
                return try await group.reduce(into: [(close: Bool, error: WalletError.Code?)]()) { $0.append($1) }
            }
            #expect(try await sandbox.cards.card(card.id).state == .closed)
            #expect(outcomes.filter { $0.close && $0.error == nil }.count == 1)
            #expect(outcomes.allSatisfy { $0.error == nil || $0.error == .cardClosed })
        }
    }

    @Test("Spend counters of a past day or month read as zero; expiry ends with its month (UTC)")
    func windows() {
        let june30 = Date(timeIntervalSince1970: 1_782_863_999)  // 2026-06-30T23:59:59Z
        let july1 = june30.addingTimeInterval(1)
        let counters = SpendCounters(day: 20_260_630, dayAmount: 70, month: 202_606, monthAmount: 300, lifetime: 900)
        #expect(counters.current(at: june30) == (70, 300, 900))
        #expect(counters.current(at: july1) == (0, 0, 900))
        var card = VirtualCard(
            id: "vc_1", walletID: "wal_1", tenant: "default", token: Token(unchecked: "tok_x"), bin: "999999",
            last4: "0001", brand: .unknown, expMonth: 6, expYear: 2026, kind: .multiUse, state: .active,
            controls: .init(), lockedMerchant: nil, spent: counters, createdAt: june30)
        #expect(!card.isExpired(at: june30))
        #expect(card.isExpired(at: july1))
        card.expYear = 2027
        #expect(!card.isExpired(at: july1))
    }
}
