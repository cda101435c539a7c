import Audit
import CardTokens
import Foundation
import GRDB
import InMemoryLogging
import Logging
import Synchronization
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

@Suite("Key life cycle")
struct KeyLifecycleTests {
    /// Tokenizes `count` generated cards, every other one with a CVV; returns their tokens.
    static func seed(_ vault: Vault, count: Int) async throws -> [Token] {
        var generator = SeededGenerator()
        let cards = (0..<count).map { PANGenerator.card(withCVV: $0 % 2 == 0, using: &generator) }
        return try await vault.tokens.tokenize(batch: cards.map { try $0.request() })
            .map { try $0.get().metadata.token }
    }

    /// Opens every card record with the vault's current ring, and every CVV with its epoch key.
    static func openEverything(_ vault: Vault) async throws {
        let rows = try await vault.database.pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT 'cards' AS t, token, ciphertext FROM cards UNION ALL "
                    + "SELECT 'cvvs', token, ciphertext FROM cvvs")
        }
        for row in rows {
            let table: String = row["t"]
            let token: String = row["token"]
            let ciphertext = [UInt8](row["ciphertext"] as Data)
            let opened =
                table == "cards"
                ? try Records.open(ciphertext, kind: .card, token: token, keyRing: vault.keyRing)
                : try Records.openCVV(ciphertext, token: token, tokens: vault.tokens)
            #expect(opened.token == token)
        }
    }

    @Test func rotateRewrapRetire() async throws {
        try await withVault { vault, _ in
            let fresh = try await vault.keys.status()
            #expect(fresh.activeVersion == 1)
            #expect(fresh.versions.map(\.version) == [1] && fresh.versions.map(\.state) == [.active])
            #expect(fresh.cryptoperiodDays == 90)
            #expect(!fresh.cryptoperiodOverdue)
            // A key seconds old is past a cryptoperiod of zero days.
            #expect(try await vault.keys.status(cryptoperiodDays: 0).cryptoperiodOverdue)

            // 30 cards under v1, 15 CVVs under epoch keys (not counted: data keys never seal a CVV)
            let old = try await Self.seed(vault, count: 30)
            #expect(try await vault.store.card(old[0], now: Date())?.keyVersion == 1)

            let version = try await vault.keys.rotate()
            #expect(version == 2)
            #expect(vault.keyRing.active.version == 2)
            let new = try await tokenize(.visa, in: vault.tokens).metadata.token
            let newCard = try #require(try await vault.store.card(new, now: Date()))
            #expect(newCard.keyVersion == 2)
            #expect(Records.headerVersion(newCard.ciphertext) == 2)
            for token in old { try await vault.tokens.verifyRecord(token) }

            let rotated = try await vault.keys.status()
            #expect(rotated.activeVersion == 2)
            #expect(rotated.versions.map(\.state) == [.decryptOnly, .active])
            #expect(rotated.versions.map(\.records) == [30, 1])

            let inUse = await #expect(throws: VaultError.self) { try await vault.keys.retire(version: 1) }
            #expect(inUse?.code == .keyVersionInUse)

            let calls = Mutex<[(Int, Int)]>([])
            let rewrapped = try await vault.keys.rewrap(batchSize: 7) { done, total in
                calls.withLock { $0.append((done, total)) }
            }
            #expect(rewrapped == 30)
            let progress = calls.withLock { $0 }
            #expect(progress.first.map { $0 == (0, 30) } ?? false)
            #expect(progress.last.map { $0 == (30, 30) } ?? false)
            #expect(progress.count == 1 + 5)  // the start, then one call per batch of 7
            #expect(zip(progress, progress.dropFirst()).allSatisfy { $0.0 <= $1.0 && $1.1 == 30 })

            let after = try await vault.keys.status()
            #expect(after.versions.map(\.records) == [0, 31])
            #expect(try await vault.store.recordsNotUnder(version: 2) == 0)
            #expect(try DB.count(vault, "SELECT count(*) FROM cards WHERE key_version != 2") == 0)
            #expect(try DB.count(vault, "SELECT count(*) FROM cvvs") == 15)

            try await vault.keys.retire(version: 1)
            let wrapped = try await vault.database.pool.read { db in
                try Row.fetchOne(db, sql: "SELECT state, wrapped_key FROM data_keys WHERE version = 1")
            }
            #expect(wrapped?["state"] == "retired")
            #expect((wrapped?["wrapped_key"] as Data?) == nil)
            #expect(vault.keyRing.key(version: 1) == nil)
            let retired = try await vault.keys.status()
            #expect(retired.versions.map(\.state) == [.retired, .active])

            for token in old + [new] { try await vault.tokens.verifyRecord(token) }
            try await Self.openEverything(vault)

            let active = await #expect(throws: VaultError.self) { try await vault.keys.retire(version: 2) }
            #expect(active?.code == .keyVersionActive)
            let unknown = await #expect(throws: VaultError.self) { try await vault.keys.retire(version: 9) }
            #expect(unknown?.code == .unknownKeyVersion)
            let again = await #expect(throws: VaultError.self) { try await vault.keys.retire(version: 1) }
            #expect(again?.code == .keyVersionRetired)

            // A retired version is never reused: the next rotation makes version 3.
            #expect(try await vault.keys.rotate() == 3)

            // The status is what `vault keys status --json` prints.
            let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(try await vault.keys.status()))
            let object = try #require(json as? [String: Any])
            #expect(object["activeVersion"] as? Int == 3)
            #expect(object["cryptoperiodOverdue"] as? Bool == false)
            let versions = try #require(object["versions"] as? [[String: Any]])
            #expect(versions.compactMap { $0["state"] as? String } == ["retired", "decrypt_only", "active"])
        }
    }

    @Test func rewrapWithNothingToDo() async throws {
        try await withVault { vault, _ in
            _ = try await Self.seed(vault, count: 3)
            let calls = Mutex<[(Int, Int)]>([])
            let count = try await vault.keys.rewrap { done, total in calls.withLock { $0.append((done, total)) } }
            #expect(count == 0)
            #expect(calls.withLock { $0.count } == 1 && calls.withLock { $0[0] == (0, 0) })
            let bad = await #expect(throws: VaultError.self) { try await vault.keys.rewrap(batchSize: 0) }
            #expect(bad?.code == .invalidArgument)
        }
    }

    @Test func rewrapIsResumable() async throws {
        try await withVault { vault, _ in
            let tokens = try await Self.seed(vault, count: 25)  // 25 cards (and 13 CVVs, not under data keys)
            let version = try await vault.keys.rotate()
            #expect(try await vault.store.recordsNotUnder(version: version) == 25)

            // An interrupted run: one batch of 10, then the process stops.
            let keyRing = vault.keyRing
            let first = try await vault.store.rewrap(to: version, limit: 10) { items in
                try KeyManager.reseal(items, to: keyRing.active, root: keyRing.root, keyRing: keyRing)
            }
            #expect(first == 10)
            #expect(try await vault.store.recordsNotUnder(version: version) == 15)
            #expect(try await vault.keys.status().versions.map(\.records) == [15, 10])

            let calls = Mutex<[(Int, Int)]>([])
            let rest = try await vault.keys.rewrap(batchSize: 4) { done, total in
                calls.withLock { $0.append((done, total)) }
            }
            #expect(rest == 15)
            #expect(first + rest == 25)
            #expect(calls.withLock { $0.last.map { $0 == (15, 15) } ?? false })
            #expect(try await vault.store.recordsNotUnder(version: version) == 0)
            for token in tokens { try await vault.tokens.verifyRecord(token) }
            try await Self.openEverything(vault)
            try await vault.keys.retire(version: 1)
            try await Self.openEverything(vault)
        }
    }

    @Test func anotherInstancePicksUpARotation() async throws {
        try await withVault { first, sandbox in
            let second = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            let before = try await tokenize(.visa, in: second.tokens).metadata.token

            let version = try await first.keys.rotate()
            #expect(version == 2)
            try await second.keys.refresh()
            #expect(second.keyRing.active.version == 2)
            let after = try await tokenize(.mastercard, in: second.tokens).metadata.token
            #expect(try await second.store.card(after, now: Date())?.keyVersion == 2)

            // Each instance opens what the other wrote.
            try await first.tokens.verifyRecord(after)
            try await first.tokens.verifyRecord(before)
            try await second.tokens.verifyRecord(before)

            // A retirement made by one instance reaches the other.
            _ = try await first.keys.rewrap()
            try await first.keys.retire(version: 1)
            try await second.keys.refresh()
            #expect(second.keyRing.key(version: 1) == nil)
            try await second.tokens.verifyRecord(before)
        }
    }

    @Test func rewrapFollowsARotationMadeElsewhere() async throws {
        try await withVault { first, sandbox in
            let second = try await Vault.open(paths: sandbox.paths, logger: TestLog.quiet())
            let tokens = try await Self.seed(first, count: 6)
            _ = try await first.keys.rotate()
            // `second` still believes version 1 is active; its rewrap must refresh and use v2.
            #expect(second.keyRing.active.version == 1)
            #expect(try await second.keys.rewrap() == 6)
            #expect(try await first.keys.status().versions.map(\.records) == [0, 6])
            for token in tokens { try await first.tokens.verifyRecord(token) }
        }
    }
}
