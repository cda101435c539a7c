import Foundation
import GRDB
import Ledger
import Testing
import VaultTestSupport
import Wallet

@Suite("Idempotency keys", .timeLimit(.minutes(10)))
struct IdempotencyTests {
    @Test("The same key and request creates one wallet and returns it again")
    func createWalletReplay() async throws {
        try await withWallet { sandbox async throws in
            let key = try sandbox.key("create")
            let first = try await sandbox.service.createWallet(ownerRef: "alice", currency: "EUR", idempotency: key)
            sandbox.clock.advance(by: 60)
            let second = try await sandbox.service.createWallet(ownerRef: "alice", currency: "EUR", idempotency: key)
            #expect(second == first)
            #expect(try await sandbox.count("wallets") == 1)
            #expect(try await sandbox.count("wallet_account_numbers") == 1)
            #expect(try await sandbox.count("ledger_accounts") == 2)
            #expect(try await sandbox.count("wallet_idempotency") == 1)
            // The replay did not burn an account number.
            let next = try await sandbox.createWallet("bob")
            #expect(next.accountNumber == VirtualAccountNumbering.default.iban(sequence: 2))
        }
    }

    @Test("The same key and request moves money once and returns the same transfer")
    func transferReplay() async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            try await sandbox.fund(alice.id, 1000)
            let key = try sandbox.key("pay-1")
            let first = try await sandbox.service.transfer(
                from: alice.id, to: bob.id, amount: 300, currency: "EUR", idempotency: key)
            let second = try await sandbox.service.transfer(
                from: alice.id, to: bob.id, amount: 300, currency: "EUR", idempotency: key)
            #expect(second == first)
            #expect(try await sandbox.balance(alice.id) == 700)
            #expect(try await sandbox.balance(bob.id) == 300)
            #expect(try await sandbox.count("ledger_transfers") == 2)  // the funding and one transfer
            #expect(try await sandbox.ledger.transfer(first.id) != nil)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("The same key with another request is idempotency_key_reused and changes nothing")
    func reusedKey() async throws {
        try await withWallet { sandbox async throws in
            let key = try sandbox.key("k")
            let wallet = try await sandbox.service.createWallet(ownerRef: "alice", currency: "EUR", idempotency: key)
            let otherOwner = await walletErrorCode {
                try await sandbox.service.createWallet(ownerRef: "bob", currency: "EUR", idempotency: key)
            }
            #expect(otherOwner == .idempotencyKeyReused)
            let otherCurrency = await walletErrorCode {
                try await sandbox.service.createWallet(ownerRef: "alice", currency: "USD", idempotency: key)
            }
            #expect(otherCurrency == .idempotencyKeyReused)
            // Even a request that would be refused while validating is reported as reuse.
            let invalid = await walletErrorCode {
                try await sandbox.service.createWallet(ownerRef: "", currency: "EUR", idempotency: key)
            }
            #expect(invalid == .idempotencyKeyReused)
            #expect(try await sandbox.count("wallets") == 1)

            // Another operation under the same key.
            let other = try await sandbox.createWallet("bob")
            try await sandbox.fund(wallet.id, 500)
            let transfer = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: wallet.id, to: other.id, amount: 100, currency: "EUR", idempotency: key)
            }
            #expect(transfer == .idempotencyKeyReused)
            #expect(try await sandbox.balance(wallet.id) == 500)
            #expect(try await sandbox.balance(other.id) == 0)

            // A transfer key used again with another amount.
            let payKey = try sandbox.key("pay")
            _ = try await sandbox.service.transfer(
                from: wallet.id, to: other.id, amount: 100, currency: "EUR", idempotency: payKey)
            let changed = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: wallet.id, to: other.id, amount: 101, currency: "EUR", idempotency: payKey)
            }
            #expect(changed == .idempotencyKeyReused)
            let reversed = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: other.id, to: wallet.id, amount: 100, currency: "EUR", idempotency: payKey)
            }
            #expect(reversed == .idempotencyKeyReused)
            #expect(try await sandbox.balance(wallet.id) == 400)
            #expect(try await sandbox.balance(other.id) == 100)
        }
    }

    @Test("Keys are scoped to their owner: two callers may use the same key")
    func scopedPerOwner() async throws {
        try await withWallet { sandbox async throws in
            let first = try await sandbox.service.createWallet(
                ownerRef: "alice", currency: "EUR", idempotency: sandbox.key("same", owner: "cred_a"))
            let second = try await sandbox.service.createWallet(
                ownerRef: "alice", currency: "EUR", idempotency: sandbox.key("same", owner: "cred_b"))
            #expect(first.id != second.id)
            #expect(first.accountNumber != second.accountNumber)
            // A different request under the same key is fine for the other owner too.
            let third = try await sandbox.service.createWallet(
                ownerRef: "carol", currency: "USD", idempotency: sandbox.key("same", owner: "cred_c"))
            #expect(third.currency == "USD")
            #expect(try await sandbox.count("wallets") == 3)
            // And each owner's replay is their own.
            let replayA = try await sandbox.service.createWallet(
                ownerRef: "alice", currency: "EUR", idempotency: sandbox.key("same", owner: "cred_a"))
            #expect(replayA == first)
            let replayB = try await sandbox.service.createWallet(
                ownerRef: "alice", currency: "EUR", idempotency: sandbox.key("same", owner: "cred_b"))
            #expect(replayB == second)

            // Transfers under the same key by two owners both move money.
            try await sandbox.fund(first.id, 1000)
            let transferA = try await sandbox.service.transfer(
                from: first.id, to: second.id, amount: 10, currency: "EUR",
                idempotency: sandbox.key("pay", owner: "cred_a"))
            let transferB = try await sandbox.service.transfer(
                from: first.id, to: second.id, amount: 10, currency: "EUR",
                idempotency: sandbox.key("pay", owner: "cred_b"))
            #expect(transferA.id != transferB.id)
            #expect(try await sandbox.balance(first.id) == 980)
        }
    }

    @Test("Many concurrent duplicates make one transfer; the others replay it or are told the key is in use")
    func concurrentTransferDuplicates() async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            try await sandbox.fund(alice.id, 10_000)
            let key = try sandbox.key("dup")
            let outcomes = try await withThrowingTaskGroup(of: Result<WalletTransfer, WalletError>.self) { group in
                for _ in 0..<32 {
                    group.addTask {
                        do {
                            return .success(
                                try await sandbox.service.transfer(
                                    from: alice.id, to: bob.id, amount: 250, currency: "EUR", idempotency: key))
                        } catch let error as WalletError {
                            return .failure(error)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let successes = outcomes.compactMap { try? $0.get() }
            let refusals = outcomes.compactMap { outcome -> WalletError.Code? in
                if case .failure(let error) = outcome { return error.code }
                return nil
            }
            #expect(successes.count + refusals.count == 32)
            #expect(!successes.isEmpty)
            #expect(Set(successes.map(\.id)).count == 1)
            #expect(refusals.allSatisfy { $0 == .idempotencyKeyInUse }, "\(refusals)")
            #expect(try await sandbox.balance(alice.id) == 10_000 - 250)
            #expect(try await sandbox.balance(bob.id) == 250)
            let transfers = try await sandbox.ledger.transfers(of: bob.id)
            #expect(transfers.count == 1)
            #expect(transfers.first?.transfer.id == successes.first?.id)
            // After the storm, the key replays.
            let replay = try await sandbox.service.transfer(
                from: alice.id, to: bob.id, amount: 250, currency: "EUR", idempotency: key)
            #expect(replay.id == successes.first?.id)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("Many concurrent duplicates create one wallet")
    func concurrentCreateDuplicates() async throws {
        try await withWallet { sandbox async throws in
            let key = try sandbox.key("create-dup")
            let outcomes = try await withThrowingTaskGroup(of: Result<WalletSummary, WalletError>.self) { group in
                for _ in 0..<32 {
                    group.addTask {
                        do {
                            return .success(
                                try await sandbox.service.createWallet(
                                    ownerRef: "alice", currency: "EUR", idempotency: key))
                        } catch let error as WalletError {
                            return .failure(error)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let created = Set(outcomes.compactMap { try? $0.get() })
            #expect(created.count == 1)
            for case .failure(let error) in outcomes { #expect(error.code == .idempotencyKeyInUse) }
            #expect(try await sandbox.count("wallets") == 1)
        }
    }

    @Test("A transfer refused for insufficient funds replays the refusal, even once the wallet is funded")
    func failureReplays() async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            try await sandbox.fund(alice.id, 100)
            let key = try sandbox.key("too-much")
            let first = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: alice.id, to: bob.id, amount: 500, currency: "EUR", idempotency: key)
            }
            #expect(first == .insufficientFunds)
            // The refusal is stored (next to the two wallets' outcomes): it is the key's outcome.
            #expect(try await sandbox.count("wallet_idempotency") == 3)
            try await sandbox.fund(alice.id, 1000)
            let again = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: alice.id, to: bob.id, amount: 500, currency: "EUR", idempotency: key)
            }
            #expect(again == .insufficientFunds)
            #expect(try await sandbox.balance(alice.id) == 1100)
            #expect(try await sandbox.balance(bob.id) == 0)
            #expect(try await sandbox.ledger.transfers(of: bob.id).isEmpty)
            // Another request under that key is still reuse, not a second try.
            let other = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: alice.id, to: bob.id, amount: 50, currency: "EUR", idempotency: key)
            }
            #expect(other == .idempotencyKeyReused)
            // A new key succeeds.
            _ = try await sandbox.service.transfer(
                from: alice.id, to: bob.id, amount: 500, currency: "EUR", idempotency: sandbox.freshKey())
            #expect(try await sandbox.balance(bob.id) == 500)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("A request refused while validating stores nothing: the key may then carry a corrected request")
    func validationRefusalStoresNothing() async throws {
        try await withWallet { sandbox async throws in
            let euros = try await sandbox.createWallet("alice", currency: "EUR")
            let dollars = try await sandbox.createWallet("bob", currency: "USD")
            let other = try await sandbox.createWallet("carol", currency: "EUR")
            try await sandbox.fund(euros.id, 1000)
            let stored = try await sandbox.count("wallet_idempotency")
            let key = try sandbox.key("fix-me")

            let mismatch = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: euros.id, to: dollars.id, amount: 100, currency: "EUR", idempotency: key)
            }
            #expect(mismatch == .currencyMismatch)
            let badAmount = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: euros.id, to: other.id, amount: 0, currency: "EUR", idempotency: key)
            }
            #expect(badAmount == .invalidAmount)
            #expect(try await sandbox.count("wallet_idempotency") == stored)

            // The IdempotencyRules rule: nothing was stored, so the corrected request runs.
            let corrected = try await sandbox.service.transfer(
                from: euros.id, to: other.id, amount: 100, currency: "EUR", idempotency: key)
            #expect(try await sandbox.balance(other.id) == 100)
            #expect(try await sandbox.count("wallet_idempotency") == stored + 1)
            // From now on the key is bound to the corrected request.
            let replay = try await sandbox.service.transfer(
                from: euros.id, to: other.id, amount: 100, currency: "EUR", idempotency: key)
            #expect(replay == corrected)
            let refusedAgain = await walletErrorCode {
                try await sandbox.service.transfer(
                    from: euros.id, to: dollars.id, amount: 100, currency: "EUR", idempotency: key)
            }
            #expect(refusedAgain == .idempotencyKeyReused)

            // Same for wallets: a bad owner_ref, then a good one under the same key.
            let createKey = try sandbox.key("create")
            let bad = await walletErrorCode {
                try await sandbox.service.createWallet(ownerRef: "", currency: "EUR", idempotency: createKey)
            }
            #expect(bad == .invalidOwnerRef)
            let good = try await sandbox.service.createWallet(ownerRef: "dave", currency: "EUR", idempotency: createKey)
            #expect(good.ownerRef == "dave")
        }
    }

    @Test(
        "Malformed keys, and keys holding a card number, are invalid_idempotency_key",
        arguments: [
            "", String(repeating: "k", count: 256), "tab\tkey", "new\nline", "nul\u{0}", "del\u{7F}", "caf\u{E9}",
            "\u{1F}", "4111111111111111", "retry-5555-5555-5555-4444", "pay 4242424242424242 again",
        ])
    func invalidKeys(key: String) {
        #expect(throws: WalletError.self) { try IdempotencyKey(owner: "cred_test", key: key) }
        do {
            _ = try IdempotencyKey(owner: "cred_test", key: key)
        } catch {
            #expect(error.code == .invalidIdempotencyKey)
            #expect(!error.isRetryable)
            #expect(!error.message.contains(key) || key.isEmpty, "the message does not echo the key")
        }
    }

    @Test("Keys of 1 to 255 printable ASCII characters are accepted")
    func validKeys() throws {
        for key in ["a", String(repeating: "k", count: 255), "order 42 / retry #1", "~!@#$%^&*()"] {
            let parsed = try IdempotencyKey(owner: "cred_test", key: key)
            #expect(parsed.key == key)
            #expect(parsed.owner == "cred_test")
        }
        #expect(try IdempotencyKey(owner: "a", key: "k") != IdempotencyKey(owner: "b", key: "k"))
    }
}

@Suite("Idempotency retention")
struct IdempotencyRetentionTests {
    @Test("Outcomes older than the cutoff are forgotten, newer ones still replay; a forgotten key runs anew")
    func purgeForgetsOldOutcomes() async throws {
        try await withWallet { sandbox async throws in
            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            try await sandbox.fund(alice.id, 1000)
            let old = try await sandbox.service.transfer(
                from: alice.id, to: bob.id, amount: 100, currency: "EUR", idempotency: sandbox.key("old"))
            sandbox.clock.advance(by: 3600)
            let cutoff = sandbox.clock.now
            let recent = try await sandbox.service.transfer(
                from: alice.id, to: bob.id, amount: 100, currency: "EUR", idempotency: sandbox.key("recent"))
            let before = try await sandbox.count("wallet_idempotency")

            // createWallet twice and the transfer "old" were stored before the cutoff.
            #expect(try await sandbox.service.purgeIdempotencyOutcomes(before: cutoff) == before - 1)
            #expect(try await sandbox.count("wallet_idempotency") == 1)
            #expect(try await sandbox.service.purgeIdempotencyOutcomes(before: cutoff) == 0, "nothing left to purge")

            let replayed = try await sandbox.service.transfer(
                from: alice.id, to: bob.id, amount: 100, currency: "EUR", idempotency: sandbox.key("recent"))
            #expect(replayed == recent)
            let again = try await sandbox.service.transfer(
                from: alice.id, to: bob.id, amount: 100, currency: "EUR", idempotency: sandbox.key("old"))
            #expect(again.id != old.id, "a forgotten key is a new request")
            #expect(try await sandbox.balance(bob.id) == 300)
            try await sandbox.ledger.verifyInvariants()
        }
    }

    @Test("Purges go through many batches, oldest first, and stop at the first newer outcome")
    func purgeInBatches() async throws {
        try await withWallet { sandbox async throws in
            // 2,500 outcomes a second apart, then one slightly out of order (stored late).
            try await sandbox.ledger.pool.write { db in
                for index in 0..<2_500 {
                    try db.execute(
                        sql: """
                            INSERT INTO wallet_idempotency (owner, key, request, outcome, created_at_ms)
                            VALUES ('cred_test', ?, 'r', x'00', ?)
                            """, arguments: ["k\(index)", 1_000_000 + Int64(index) * 1000])
                }
                try db.execute(
                    sql: """
                        INSERT INTO wallet_idempotency (owner, key, request, outcome, created_at_ms)
                        VALUES ('cred_test', 'late', 'r', x'00', 1000)
                        """)
            }
            let cutoff = Date(timeIntervalSince1970: 1000 + 2_100)
            #expect(try await sandbox.service.purgeIdempotencyOutcomes(before: cutoff) == 2_100)
            let keys = try await sandbox.ledger.pool.read { db in
                try String.fetchAll(db, sql: "SELECT key FROM wallet_idempotency ORDER BY rowid")
            }
            #expect(keys == (2_100..<2_500).map { "k\($0)" } + ["late"])
            // The late row goes once everything before it has.
            #expect(
                try await sandbox.service.purgeIdempotencyOutcomes(before: Date(timeIntervalSince1970: 9000)) == 401)
            #expect(try await sandbox.count("wallet_idempotency") == 0)
        }
    }
}
