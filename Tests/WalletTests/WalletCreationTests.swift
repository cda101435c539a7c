import Foundation
import GRDB
import Ledger
import Testing
import VaultTestSupport
import Wallet

@Suite("Wallets", .timeLimit(.minutes(10)))
struct WalletCreationTests {
    @Test("A new wallet gets an IBAN under the configured numbering, zero balances and its fields")
    func create() async throws {
        let numbering = try VirtualAccountNumbering(country: "NL", bankCode: "ABNA")
        try await withWallet(numbering: numbering) { sandbox async throws in
            let wallet = try await sandbox.service.createWallet(
                ownerRef: "customer-42", currency: "EUR", idempotency: sandbox.key("create-1"))
            #expect(wallet.id.hasPrefix("wal_"))
            #expect(wallet.ownerRef == "customer-42")
            #expect(wallet.currency == "EUR")
            #expect(wallet.createdAt == Date(truncatingToMilliseconds: sandbox.clock.now))
            #expect(wallet.balances == Balances())
            #expect(wallet.accountNumber.rawValue.hasPrefix("NL"))
            #expect(wallet.accountNumber.rawValue.dropFirst(4).hasPrefix("ABNA"))
            #expect(wallet.accountNumber.rawValue.count == 18)
            #expect(wallet.accountNumber == numbering.iban(sequence: 1))
            #expect(try IBAN(validating: wallet.accountNumber.formatted) == wallet.accountNumber)

            let read = try await sandbox.service.wallet(wallet.id)
            #expect(read == wallet)

            // The wallet is a no-overdraft ledger account; the currency's receivable exists too.
            let account = try #require(try await sandbox.ledger.account(wallet.id))
            #expect(account.currency == Money.eur)
            #expect(account.flags == .debitsMustNotExceedCredits)
            let receivable = try #require(
                try await sandbox.ledger.account(WalletService.receivableAccountID(Money.eur)))
            #expect(receivable.currency == Money.eur)
            #expect(receivable.balances == Balances())
            #expect(WalletService.receivableAccountID(Money.eur) == "acquirer_receivable:EUR")
        }
    }

    @Test("Account numbers are distinct, in sequence order, and never handed out twice")
    func distinctNumbers() async throws {
        try await withWallet { sandbox async throws in
            var wallets = [WalletSummary]()
            // Concurrent creations still take distinct sequence numbers.
            try await withThrowingTaskGroup(of: WalletSummary.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        try await sandbox.createWallet("owner-\(index)", currency: index % 2 == 0 ? "EUR" : "USD")
                    }
                }
                for try await wallet in group { wallets.append(wallet) }
            }
            #expect(Set(wallets.map(\.id)).count == 40)
            #expect(Set(wallets.map(\.accountNumber)).count == 40)
            let expected = Set((1...40).map { VirtualAccountNumbering.default.iban(sequence: Int64($0)) })
            #expect(Set(wallets.map(\.accountNumber)) == expected)

            // Sequentially, each number comes after the one before.
            var previous = Int64(40)
            for index in 0..<10 {
                let wallet = try await sandbox.createWallet("late-\(index)")
                let sequence = try #require(Int64(wallet.accountNumber.rawValue.suffix(10)))
                #expect(sequence == previous + 1)
                previous = sequence
            }

            // Even if a number's row is lost, AUTOINCREMENT never hands its sequence out again.
            let last = try await sandbox.createWallet("last")
            try await sandbox.ledger.pool.write { db in
                try db.execute(sql: "DELETE FROM wallet_account_numbers WHERE wallet_id = ?", arguments: [last.id])
            }
            let next = try await sandbox.createWallet("next")
            #expect(next.accountNumber == VirtualAccountNumbering.default.iban(sequence: 52))
            #expect(next.accountNumber != last.accountNumber)
        }
    }

    @Test("No number is handed out past the numbering's capacity")
    func exhausted() async throws {
        try await withWallet { sandbox async throws in
            _ = try await sandbox.createWallet()
            let capacity = VirtualAccountNumbering.default.capacity
            try await sandbox.ledger.pool.write { db in
                try db.execute(
                    sql: "UPDATE sqlite_sequence SET seq = ? WHERE name = 'wallet_account_numbers'",
                    arguments: [capacity - 1])
            }
            let last = try await sandbox.createWallet("last")
            #expect(last.accountNumber == VirtualAccountNumbering.default.iban(sequence: capacity))
            let before = try await sandbox.count("wallets")
            let code = await walletErrorCode { try await sandbox.createWallet("one too many") }
            #expect(code == .accountNumbersExhausted)
            #expect(try await sandbox.count("wallets") == before)
            #expect(try await sandbox.count("ledger_accounts") == before + 1)  // + the receivable
        }
    }

    @Test("An unknown currency is unsupported_currency and creates nothing", arguments: ["XXX", "eur", "", "EURO"])
    func unknownCurrency(code: String) async throws {
        try await withWallet { sandbox async throws in
            let error = await walletErrorCode { try await sandbox.createWallet(currency: code) }
            #expect(error == .unsupportedCurrency)
            #expect(try await sandbox.count("wallets") == 0)
            #expect(try await sandbox.count("ledger_accounts") == 0)
            #expect(try await sandbox.count("wallet_idempotency") == 0)
        }
    }

    @Test(
        "A bad owner_ref, or one holding a card number, is invalid_owner_ref",
        arguments: [
            "", String(repeating: "x", count: 129), "tab\there", "new\nline", "caf\u{E9}", "nul\u{0}",
            "4111111111111111", "customer 4242 4242 4242 4242", "amex-3782-822463-10005",
        ])
    func badOwnerRef(ownerRef: String) async throws {
        try await withWallet { sandbox async throws in
            let error = await walletErrorCode { try await sandbox.createWallet(ownerRef) }
            #expect(error == .invalidOwnerRef)
            #expect(try await sandbox.count("wallets") == 0)
        }
    }

    @Test("owner_ref may be 1 to 128 printable ASCII characters")
    func ownerRefBounds() async throws {
        try await withWallet { sandbox async throws in
            let longest = String(repeating: "x", count: 128)
            #expect(try await sandbox.createWallet(longest).ownerRef == longest)
            #expect(try await sandbox.createWallet("a").ownerRef == "a")
            #expect(try await sandbox.createWallet("~ !").ownerRef == "~ !")
        }
    }

    @Test("An unknown wallet id is wallet_not_found", arguments: ["wal_nothere", "", "acquirer_receivable:EUR"])
    func unknownWallet(id: String) async throws {
        try await withWallet { sandbox async throws in
            _ = try await sandbox.createWallet()
            #expect(await walletErrorCode { try await sandbox.service.wallet(id) } == .walletNotFound)
        }
    }

    @Test("A wallet read back shows its current balances")
    func balancesRead() async throws {
        try await withWallet { sandbox async throws in
            let wallet = try await sandbox.createWallet()
            #expect(try await sandbox.service.wallet(wallet.id).balances.posted == 0)
            try await sandbox.fund(wallet.id, 1234)
            let read = try await sandbox.service.wallet(wallet.id)
            #expect(read.balances.posted == 1234)
            #expect(read.balances.creditsPosted == 1234)
            #expect(read.accountNumber == wallet.accountNumber)
        }
    }

    @Test("Wallets and numbers survive reopening wallet.db; numbering continues after the last")
    func reopen() async throws {
        let directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("wallet-tests-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = ManualClock()
        let cards = InMemoryCardDirectory()
        var first: WalletSummary
        do {
            let ledger = try SQLiteLedger(directory: directory, clock: clock.function)
            let service = WalletService(
                store: try SQLiteWalletStore(ledger: ledger), cards: cards, authorizer: nil, clock: clock.function)
            first = try await service.createWallet(
                ownerRef: "o", currency: "EUR", idempotency: IdempotencyKey(owner: "c", key: "k1"))
        }
        let ledger = try SQLiteLedger(directory: directory, clock: clock.function)
        let service = WalletService(
            store: try SQLiteWalletStore(ledger: ledger), cards: cards, authorizer: nil, clock: clock.function)
        #expect(try await service.wallet(first.id) == first)
        // The key's outcome survived too: replayed, not a second wallet.
        let replay = try await service.createWallet(
            ownerRef: "o", currency: "EUR", idempotency: IdempotencyKey(owner: "c", key: "k1"))
        #expect(replay == first)
        let second = try await service.createWallet(
            ownerRef: "o", currency: "EUR", idempotency: IdempotencyKey(owner: "c", key: "k2"))
        #expect(second.accountNumber == VirtualAccountNumbering.default.iban(sequence: 2))
    }
}

extension Date {
    /// `date` truncated to the millisecond, as the wallet stores times.
    init(truncatingToMilliseconds date: Date) {
        self.init(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded(.down) / 1000)
    }
}
