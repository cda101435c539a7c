import CardTokens
import Foundation
import GRDB
import Ledger
import Testing
import VaultTestSupport
import Wallet

@Suite("wallet.db holds no card data")
struct StorageTests {
    static let pans = ["4111111111111111", "4242424242424242"]

    @Test("After wallets, cards, top-ups, transfers and statements, no PAN or CVV is in wallet.db or its WAL")
    func noCardData() async throws {
        try await withWallet { sandbox async throws in
            let now = sandbox.clock.now
            // The metadata the vault would derive from these cards: BIN and last four only.
            var metadata = [CardMetadata]()
            for (index, pan) in Self.pans.enumerated() {
                let input = try CardInput(pan: pan, expMonth: 12, expYear: 2031, cvv: "123", now: now)
                metadata.append(
                    TestCards.metadata(
                        bin: input.bin, last4: input.last4, brand: input.brand, expMonth: input.expMonth,
                        expYear: input.expYear, fingerprint: "fp-storage-\(index)"))
            }
            #expect(metadata.map(\.bin) == ["411111", "424242"])
            #expect(metadata.map(\.last4) == ["1111", "4242"])

            let alice = try await sandbox.createWallet("alice")
            let bob = try await sandbox.createWallet("bob")
            var cards = [CardOnFile]()
            for card in metadata { cards.append(try await sandbox.addCard(to: alice.id, card)) }
            sandbox.authorizer.script(.decline(code: "do_not_honor"), .fail(.acquirerTimeout))
            for (index, card) in cards.enumerated() {
                _ = try? await sandbox.service.topUp(
                    walletID: alice.id, cardID: card.id, amount: 1000 + Int64(index), currency: "EUR",
                    idempotency: sandbox.freshKey())
            }
            for card in cards {
                _ = try await sandbox.service.topUp(
                    walletID: alice.id, cardID: card.id, amount: 5000, currency: "EUR",
                    idempotency: sandbox.freshKey())
            }
            _ = try await sandbox.service.transfer(
                from: alice.id, to: bob.id, amount: 2500, currency: "EUR", idempotency: sandbox.freshKey())
            _ = try await sandbox.service.transactions(of: alice.id)
            #expect(try await sandbox.balance(alice.id) == 7500)
            #expect(try await sandbox.count("wallet_cards") == 2)
            #expect(try await sandbox.count("wallet_top_ups") == 4)

            // No column that could hold a PAN, CVV or ciphertext, in any table.
            let schema = try await sandbox.ledger.pool.read { db -> (sql: [String], columns: [String]) in
                let sql = try String.fetchAll(db, sql: "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL")
                let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
                var columns = [String]()
                for table in tables {
                    columns += try db.columns(in: table).map { "\(table).\($0.name)".lowercased() }
                }
                return (sql, columns)
            }
            #expect(schema.columns.contains("wallet_cards.last4"))
            for column in schema.columns {
                let name = column.split(separator: ".").last.map(String.init) ?? column
                #expect(!name.contains("cvv") && !name.contains("cvc"), "\(column)")
                #expect(name != "pan" && !name.hasPrefix("pan_") && !name.hasSuffix("_pan"), "\(column)")
                #expect(!name.contains("cipher") && !name.contains("sealed"), "\(column)")
            }
            #expect(!schema.sql.joined().lowercased().contains("cvv"))

            // The raw bytes of the database and its write-ahead log.
            let files = [sandbox.databasePath, sandbox.databasePath + "-wal"]
            var scanned = 0
            for path in files where FileManager.default.fileExists(atPath: path) {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
                scanned += bytes.count
                for pan in Self.pans {
                    #expect(bytes.range(of: Data(pan.utf8)) == nil, "\(path) holds a PAN")
                    // Nor as a big-endian integer (SQLite's record format).
                    let number = Int64(pan)!.bigEndian
                    let integer = withUnsafeBytes(of: number) { Data($0) }
                    #expect(bytes.range(of: integer) == nil, "\(path) holds a PAN as an integer")
                }
            }
            // The checks above looked at something: the cards' last four are in there.
            #expect(scanned > 0)
            let everything = try files.filter { FileManager.default.fileExists(atPath: $0) }
                .map { try Data(contentsOf: URL(fileURLWithPath: $0)) }.reduce(Data(), +)
            #expect(everything.range(of: Data(cards[0].token.rawValue.utf8)) != nil)
            #expect(everything.range(of: Data("fp-storage-1".utf8)) != nil)
        }
    }
}
