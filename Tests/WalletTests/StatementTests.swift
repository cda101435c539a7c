import CardTokens
import Foundation
import Ledger
import Testing
import VaultTestSupport
import Wallet

@Suite("Statements")
struct StatementTests {
    @Test("Top-ups and transfers appear oldest first, with kind, signed amount and counterparty")
    func entries() async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            let card = try await sandbox.addCard(to: alice.id)
            let topUp = try await sandbox.service.topUp(
                walletID: alice.id, cardID: card.id, amount: 5000, currency: "EUR", idempotency: sandbox.key("t"))
            sandbox.clock.advance(by: 1)
            let out = try await sandbox.service.transfer(
                from: alice.id, to: bob.id, amount: 1200, currency: "EUR", idempotency: sandbox.key("o"))
            sandbox.clock.advance(by: 1)
            let back = try await sandbox.service.transfer(
                from: bob.id, to: alice.id, amount: 200, currency: "EUR", idempotency: sandbox.key("b"))

            let (entries, next) = try await sandbox.service.transactions(of: alice.id)
            #expect(next == nil)
            #expect(entries.map(\.id) == [topUp.id, out.id, back.id])
            #expect(entries.map(\.kind) == [.topUp, .transferOut, .transferIn])
            #expect(entries.map(\.amount) == [5000, -1200, 200])
            #expect(entries.map(\.counterpartyWallet) == [nil, bob.id, bob.id])
            #expect(entries.allSatisfy { $0.currency == "EUR" })
            #expect(entries.map(\.sequence) == entries.map(\.sequence).sorted())
            #expect(Set(entries.map(\.sequence)).count == 3)
            #expect(entries[1].createdAt == out.createdAt)
            // The sum of the statement is the balance.
            #expect(entries.map(\.amount).reduce(0, +) == (try await sandbox.balance(alice.id)))

            let (bobs, _) = try await sandbox.service.transactions(of: bob.id)
            #expect(bobs.map(\.kind) == [.transferIn, .transferOut])
            #expect(bobs.map(\.amount) == [1200, -200])
            #expect(bobs.map(\.counterpartyWallet) == [alice.id, alice.id])
            // A declined top-up is not a statement line.
            sandbox.authorizer.script(.decline(code: "do_not_honor"))
            _ = try await sandbox.service.topUp(
                walletID: bob.id, cardID: try await sandbox.addCard(to: bob.id).id, amount: 1, currency: "EUR",
                idempotency: sandbox.freshKey())
            #expect(try await sandbox.service.transactions(of: bob.id).entries.count == 2)
        }
    }

    @Test("Pages cover every entry once; nextAfter is nil on the last page", arguments: [1, 2, 3, 7, 25, 26, 1000])
    func pagination(limit: Int) async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            try await sandbox.fund(alice.id, 100_000)
            try await sandbox.fund(bob.id, 100_000)
            // Interleave other wallets' entries so that sequences have gaps.
            let carol = try await sandbox.createWallet("carol")
            try await sandbox.fund(carol.id, 100_000)
            var expected = [String]()
            for index in 0..<25 {
                let transfer = try await sandbox.service.transfer(
                    from: index % 3 == 0 ? bob.id : alice.id, to: index % 3 == 0 ? alice.id : bob.id,
                    amount: 100, currency: "EUR", idempotency: sandbox.freshKey())
                expected.append(transfer.id)
                _ = try await sandbox.service.transfer(
                    from: carol.id, to: bob.id, amount: 1, currency: "EUR", idempotency: sandbox.freshKey())
            }
            // 26 entries: the funding, then 25 transfers.
            var seen = [StatementEntry]()
            var after: Int64 = 0
            var pages = 0
            while true {
                let (entries, next) = try await sandbox.service.transactions(of: alice.id, after: after, limit: limit)
                pages += 1
                #expect(entries.count <= limit)
                seen += entries
                guard let next else { break }
                #expect(entries.count == limit, "only the last page may be short")
                #expect(next == entries.last?.sequence)
                after = next
                if pages > 100 { break }
            }
            #expect(seen.count == 26)
            #expect(seen.dropFirst().map(\.id) == expected)
            #expect(seen.first?.kind == .topUp)
            #expect(Set(seen.map(\.sequence)).count == 26)
            // No empty trailing page, even when the entries fill the last page exactly.
            #expect(pages == (26 + limit - 1) / limit)
            // Past the end: an empty last page.
            let last = try #require(seen.last)
            let (beyond, none) = try await sandbox.service.transactions(
                of: alice.id, after: last.sequence, limit: limit)
            #expect(beyond.isEmpty)
            #expect(none == nil)
        }
    }

    @Test(
        "Holds, voids and refusals are not statement lines, and pages stay full around them",
        arguments: [1, 2, 3, 5, 100])
    func paginationAroundHolds(limit: Int) async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            let card = try await sandbox.addCard(to: alice.id)
            var expected = [(id: String, amount: Int64)]()
            for index in 0..<12 {
                switch index % 4 {
                case 0:
                    // A hold and its void: two ledger rows, no line.
                    sandbox.authorizer.script(.decline(code: "do_not_honor"))
                    _ = try await sandbox.service.topUp(
                        walletID: alice.id, cardID: card.id, amount: 50, currency: "EUR",
                        idempotency: sandbox.freshKey())
                case 1:
                    // A hold and its post: one line, under the top-up's id.
                    let topUp = try await sandbox.service.topUp(
                        walletID: alice.id, cardID: card.id, amount: 1000, currency: "EUR",
                        idempotency: sandbox.freshKey())
                    expected.append((topUp.id, 1000))
                case 2:
                    // A hold left open by a timeout: no line.
                    sandbox.authorizer.script(.fail(.acquirerTimeout))
                    _ = try? await sandbox.service.topUp(
                        walletID: alice.id, cardID: card.id, amount: 70, currency: "EUR",
                        idempotency: sandbox.freshKey())
                default:
                    let transfer = try await sandbox.service.transfer(
                        from: alice.id, to: bob.id, amount: 10, currency: "EUR", idempotency: sandbox.freshKey())
                    expected.append((transfer.id, -10))
                }
            }
            var seen = [StatementEntry]()
            var after: Int64 = 0
            while true {
                let (entries, next) = try await sandbox.service.transactions(of: alice.id, after: after, limit: limit)
                seen += entries
                guard let next else { break }
                #expect(entries.count == limit)
                #expect(next == entries.last?.sequence)
                after = next
                if seen.count > 100 { break }
            }
            #expect(seen.map(\.id) == expected.map(\.id))
            #expect(seen.map(\.amount) == expected.map(\.amount))
            #expect(seen.filter { $0.kind == .topUp }.count == 3)
            #expect(seen.map(\.amount).reduce(0, +) == (try await sandbox.balance(alice.id)))
        }
    }

    @Test("A bad cursor or limit is invalid_cursor; an unknown wallet is wallet_not_found")
    func refusals() async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            for (after, limit) in [(-1, 10), (0, 0), (0, -1), (0, 1001), (Int64.min, 1)] {
                let code = await walletErrorCode {
                    try await sandbox.service.transactions(of: alice.id, after: after, limit: limit)
                }
                #expect(code == .invalidCursor, "after \(after) limit \(limit)")
            }
            #expect(try await sandbox.service.transactions(of: alice.id, after: 0, limit: 1000).entries.isEmpty)
            #expect(try await sandbox.service.transactions(of: alice.id, after: 0, limit: 1).nextAfter == nil)
            let missing = await walletErrorCode { try await sandbox.service.transactions(of: "wal_missing") }
            #expect(missing == .walletNotFound)
        }
    }
}
