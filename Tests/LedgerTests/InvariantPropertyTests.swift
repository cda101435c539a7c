import Foundation
import GRDB
import Ledger
import Synchronization
import Testing
import VaultTestSupport

/// Random concurrent traffic against a ledger, then every invariant checked from the outside.
///
/// The generator is seeded (`LEDGER_SEED` replays a run); the interleaving of the 16 tasks is not,
/// which is the point: the invariants must hold under any of them.
@Suite("Invariants under concurrent random traffic", .timeLimit(.minutes(10)))
struct InvariantPropertyTests {
    static let taskCount = 16
    static let transferCount = 2_000
    static let currencies = ["EUR", "JPY"]

    /// The accounts of one currency: an unflagged bank and nine wallets, six of them no-overdraft.
    struct Book: Sendable {
        var currency: String
        var bank: String
        var wallets: [String]
        var flagged: Set<String>
        var all: [String] { [bank] + wallets }
    }

    /// Pending transfers created so far by any task, so that tasks race to post and void them.
    final class PendingRegistry: Sendable {
        private let entries = Mutex<[(id: String, amount: Int64)]>([])

        func add(_ id: String, amount: Int64) { entries.withLock { $0.append((id, amount)) } }

        func pick(using generator: inout SeededGenerator) -> (id: String, amount: Int64)? {
            entries.withLock { entries in
                entries.isEmpty ? nil : entries[Int.random(in: 0..<entries.count, using: &generator)]
            }
        }
    }

    /// What the requests of one task came to, by result.
    struct Tally: Sendable {
        var byResult: [String: Int] = [:]
        var createdByKind: [String: Int] = [:]
        var submitted = 0

        mutating func merge(_ other: Tally) {
            byResult.merge(other.byResult, uniquingKeysWith: +)
            createdByKind.merge(other.createdByKind, uniquingKeysWith: +)
            submitted += other.submitted
        }
    }

    @Test("Zero sums, no overdraft and single release hold after 2,000 concurrent random transfers")
    func randomTraffic() async throws {
        let seed =
            ProcessInfo.processInfo.environment["LEDGER_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0...UInt64.max)
        let replay = Comment(rawValue: "replay with LEDGER_SEED=\(seed)")
        let clock = ManualClock()
        try await withLedger(clock: clock) { ledger, _ in
            var generator = SeededGenerator(seed: seed)
            let books = try await Self.openBooks(ledger, using: &generator)

            let registry = PendingRegistry()
            let perTask = Self.transferCount / Self.taskCount
            let tally = try await withThrowingTaskGroup(of: Tally.self) { group in
                for task in 0..<Self.taskCount {
                    let taskSeed = seed &+ UInt64(task + 1) &* 0x9E37_79B9_7F4A_7C15
                    group.addTask {
                        try await Self.traffic(
                            ledger, books: books, registry: registry, clock: clock, task: task, count: perTask,
                            seed: taskSeed)
                    }
                }
                // Time passes meanwhile and the sweeper expires holds, concurrently with the traffic.
                group.addTask {
                    for _ in 0..<20 {
                        clock.advance(by: 0.5)
                        _ = try await ledger.expirePending()
                        try await Task.sleep(for: .milliseconds(2))
                    }
                    return Tally()
                }
                return try await group.reduce(into: Tally()) { $0.merge($1) }
            }

            #expect(tally.submitted == Self.transferCount, replay)
            #expect(tally.byResult[LedgerError.Code.invariantViolated.rawValue] == nil, replay)
            // The traffic exercised every path (with 2,000 transfers, a miss would mean a broken generator).
            for kind in ["single", "pending", "post", "void"] {
                #expect(tally.createdByKind[kind, default: 0] > 0, "no \(kind) created; \(replay)")
            }
            for code in [LedgerError.Code.insufficientFunds, .invalidAmount, .currencyMismatch] {
                #expect(tally.byResult[code.rawValue, default: 0] > 0, "no \(code); \(replay)")
            }
            #expect(tally.byResult["created", default: 0] > Self.transferCount / 5, replay)

            try await Self.checkEverything(ledger, books: books, replay: replay)

            // Once every deadline has passed, the sweep closes every hold that has one.
            clock.advance(by: 3_600)
            _ = try await ledger.expirePending()
            let open = try await ledger.pool.read { db in
                try Int.fetchOne(
                    db,
                    sql: "SELECT count(*) FROM ledger_transfers WHERE state = 'pending' AND expires_at_ms IS NOT NULL")
            }
            #expect(open == 0, replay)
            try await Self.checkEverything(ledger, books: books, replay: replay)
        }
    }

    // MARK: Setting up

    private static func openBooks(_ ledger: SQLiteLedger, using generator: inout SeededGenerator) async throws -> [Book]
    {
        var books = [Book]()
        for code in currencies {
            let currency = try Currency(code)
            var book = Book(currency: code, bank: "bank-\(code)", wallets: [], flagged: [])
            _ = try await ledger.createAccount(id: book.bank, currency: currency)
            var funding = [TransferRequest]()
            for index in 0..<9 {
                let id = "wallet-\(code)-\(index)"
                let flagged = index % 3 != 0
                _ = try await ledger.createAccount(
                    id: id, currency: currency, flags: flagged ? .debitsMustNotExceedCredits : [])
                book.wallets.append(id)
                if flagged {
                    book.flagged.insert(id)
                    funding.append(
                        .make("fund-\(id)", book.bank, id, Int64.random(in: 1_000...20_000, using: &generator)))
                }
            }
            let results = try await ledger.createTransfers(funding)
            try #require(results.allSatisfy { $0 == .created })
            books.append(book)
        }
        return books
    }

    // MARK: Traffic

    private static func traffic(
        _ ledger: SQLiteLedger, books: [Book], registry: PendingRegistry, clock: ManualClock, task: Int, count: Int,
        seed: UInt64
    ) async throws -> Tally {
        var generator = SeededGenerator(seed: seed)
        var tally = Tally()
        var history = [TransferRequest]()
        var serial = 0
        while tally.submitted < count {
            let size = min(Int.random(in: 1...6, using: &generator), count - tally.submitted)
            var batch = [TransferRequest]()
            for _ in 0..<size {
                serial += 1
                var request = randomRequest(
                    id: "t\(task)-\(serial)", books: books, registry: registry, clock: clock, history: history,
                    using: &generator)
                // Some linked chains, including now and then an open one at the end of the call.
                request.linked = Int.random(in: 0..<8, using: &generator) == 0
                batch.append(request)
            }
            let results = try await ledger.createTransfers(batch)
            try #require(results.count == batch.count)
            for (request, result) in zip(batch, results) {
                switch result {
                case .created:
                    tally.byResult["created", default: 0] += 1
                    tally.createdByKind[kindName(request.kind), default: 0] += 1
                    if case .pending = request.kind { registry.add(request.id, amount: request.amount) }
                case .exists:
                    tally.byResult["exists", default: 0] += 1
                case .failed(let error):
                    tally.byResult[error.code.rawValue, default: 0] += 1
                }
            }
            history += batch
            tally.submitted += batch.count
        }
        return tally
    }

    private static func randomRequest(
        id: String, books: [Book], registry: PendingRegistry, clock: ManualClock, history: [TransferRequest],
        using generator: inout SeededGenerator
    ) -> TransferRequest {
        let book = books.randomElement(using: &generator)!
        let debit = book.all.randomElement(using: &generator)!
        // Now and then the same account, or one in the other currency.
        let roll = Int.random(in: 0..<100, using: &generator)
        let credit =
            roll < 2
            ? debit
            : roll < 6
                ? books.first { $0.currency != book.currency }!.wallets.randomElement(using: &generator)!
                : book.all.filter { $0 != debit }.randomElement(using: &generator)!
        let amount = randomAmount(using: &generator)

        switch Int.random(in: 0..<100, using: &generator) {
        case 0..<35:
            return .make(id, debit, credit, amount)
        case 35..<55:
            let deadline: Date? =
                Bool.random(using: &generator) ? nil : clock.now + Double.random(in: 0.2...5, using: &generator)
            return .make(id, debit, credit, amount, .pending(expiresAt: deadline))
        case 55..<75:
            guard let pending = registry.pick(using: &generator) else { return .make(id, debit, credit, amount) }
            // Mostly within the hold, sometimes more than it.
            let posted = Int64.random(in: 1...(pending.amount + pending.amount / 8 + 1), using: &generator)
            return .post(id, pending.id, posted)
        case 75..<92:
            guard let pending = registry.pick(using: &generator) else { return .make(id, debit, credit, amount) }
            return .void(id, pending.id)
        case 92..<96:
            // A post or void of something that does not exist (yet).
            return .post(id, "t\(Int.random(in: 0..<taskCount, using: &generator))-999999", 1)
        default:
            // A retry of an earlier request of this task, verbatim.
            guard var retry = history.randomElement(using: &generator) else { return .make(id, debit, credit, amount) }
            retry.linked = false
            return retry
        }
    }

    /// Mostly modest, sometimes far beyond any wallet, sometimes not positive.
    private static func randomAmount(using generator: inout SeededGenerator) -> Int64 {
        switch Int.random(in: 0..<100, using: &generator) {
        case 0..<3: return -Int64.random(in: 0...10, using: &generator)
        case 3..<12: return Int64.random(in: 50_000...5_000_000, using: &generator)
        default: return Int64.random(in: 1...2_000, using: &generator)
        }
    }

    private static func kindName(_ kind: TransferKind) -> String {
        switch kind {
        case .single: "single"
        case .pending: "pending"
        case .post: "post"
        case .void: "void"
        }
    }

    // MARK: Checking

    /// One row of `ledger_transfers`, read straight from the database (not through the API).
    struct StoredRow: Sendable {
        var id: String
        var kind: String
        var amount: Int64
        var debit: String
        var credit: String
        var state: String?
        var pendingID: String?

        init(_ row: Row) {
            id = row["id"]
            kind = row["kind"]
            amount = row["amount"]
            debit = row["debit_account"]
            credit = row["credit_account"]
            state = row["state"]
            pendingID = row["pending_id"]
        }
    }

    private static func checkEverything(_ ledger: SQLiteLedger, books: [Book], replay: Comment) async throws {
        try await ledger.verifyInvariants()

        // Balances, read account by account.
        var balances = [String: Balances]()
        for book in books {
            var posted: Int64 = 0
            var pending: Int64 = 0
            for id in book.all {
                let account = try #require(try await ledger.account(id))
                #expect(account.currency.code == book.currency, replay)
                balances[id] = account.balances
                posted += account.balances.posted
                pending += account.balances.pending
                if book.flagged.contains(id) {
                    let b = account.balances
                    #expect(b.debitsPosted + b.debitsPending <= b.creditsPosted, "\(id) overdrawn: \(b); \(replay)")
                    #expect(b.available >= 0, replay)
                }
            }
            #expect(posted == 0, "\(book.currency) posted sum \(posted); \(replay)")
            #expect(pending == 0, "\(book.currency) pending sum \(pending); \(replay)")
        }

        let rows = try await ledger.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM ledger_transfers").map(StoredRow.init)
        }
        var recomputed = [String: Balances]()
        var releases = [String: [(kind: String, amount: Int64)]]()
        var pendings = [String: (state: String?, amount: Int64)]()
        for row in rows {
            #expect(row.amount >= 0, replay)
            switch row.kind {
            case "single", "post":
                #expect(row.state == nil, replay)
                recomputed[row.debit, default: Balances()].debitsPosted += row.amount
                recomputed[row.credit, default: Balances()].creditsPosted += row.amount
                if row.kind == "post" {
                    #expect(row.amount > 0, replay)
                    releases[row.pendingID ?? "", default: []].append((row.kind, row.amount))
                }
            case "void":
                releases[row.pendingID ?? "", default: []].append((row.kind, row.amount))
            case "pending":
                #expect(row.amount > 0, replay)
                pendings[row.id] = (row.state, row.amount)
                if row.state == "pending" {
                    recomputed[row.debit, default: Balances()].debitsPending += row.amount
                    recomputed[row.credit, default: Balances()].creditsPending += row.amount
                }
            default:
                Issue.record("unexpected kind \(row.kind); \(replay)")
            }
        }

        // Every balance is exactly what its transfers say: each hold released once, never twice.
        for (id, stored) in balances {
            #expect(stored == recomputed[id, default: Balances()], "\(id); \(replay)")
        }
        for (pendingID, released) in releases {
            #expect(released.count <= 1, "\(pendingID) released \(released.count) times; \(replay)")
            #expect(pendings[pendingID] != nil, "release of \(pendingID) which is not pending; \(replay)")
        }
        for (id, pending) in pendings {
            let state = try #require(pending.state.flatMap(PendingState.init(rawValue:)), "\(id); \(replay)")
            let released = releases[id] ?? []
            switch state {
            case .pending, .expired:
                #expect(released.isEmpty, "\(id) is \(state) but has \(released); \(replay)")
            case .posted:
                #expect(released.map(\.kind) == ["post"], "\(id); \(replay)")
                #expect(released.allSatisfy { $0.amount <= pending.amount }, "\(id); \(replay)")
            case .voided:
                #expect(released.map(\.kind) == ["void"], "\(id); \(replay)")
            }
            #expect(try await ledger.transfer(id)?.state == state, replay)
        }
    }
}
