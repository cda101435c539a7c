import Foundation
import GRDB
import Synchronization
import Testing
import VaultTestSupport

@testable import Ledger

/// A commit keeps the accounts it touches in memory and writes each once at its end; this
/// checks that it decides exactly as if every transfer had been its own commit.
///
/// Two ledgers get the same random rounds of requests (failures of every kind, linked chains,
/// two-phase transfers, retries, reused ids) on the same clock:
/// - the batched ledger applies a round as ONE commit, split into several callers' submissions,
///   some of which record (and see the balances so far) and some of whose records throw (so
///   their transfers roll back in the middle of the commit);
/// - the reference ledger applies every chain of every submission that was kept as a commit of
///   its own, one after the other.
/// Results, balances (also as each record saw them), stored transfers and statements must agree.
/// `LEDGER_SEED` replays a run.
@Suite("Batching in one commit decides like one transfer at a time")
struct BatchingPropertyTests {
    static let rounds = 40

    struct Book {
        var accounts: [String]
        var pendings: [(id: String, debit: String, credit: String, amount: Int64)] = []
        var history: [TransferRequest] = []
        var serial = 0
    }

    /// What a record saw: the balances of every account, as read in the commit.
    final class Seen: Sendable {
        let balances = Mutex<[Int: [String: Balances]]>([:])
    }

    struct RecordFailed: Error {}

    @Test("Random rounds: same results, balances, transfers and statements")
    func sameAsOneByOne() async throws {
        let seed =
            ProcessInfo.processInfo.environment["LEDGER_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0...UInt64.max)
        let replay = Comment(rawValue: "replay with LEDGER_SEED=\(seed)")
        var generator = SeededGenerator(seed: seed)
        let clock = ManualClock()
        try await withLedger(clock: clock) { batched, _ in
            try await withLedger(clock: clock) { reference, _ in
                var book = Book(accounts: [])
                for ledger in [batched, reference] { book.accounts = try await Self.openAccounts(ledger) }

                var kinds = [String: Int]()
                for round in 0..<Self.rounds {
                    let requests = (0..<Int.random(in: 20...120, using: &generator)).map { _ in
                        Self.randomRequest(&book, clock: clock, using: &generator)
                    }
                    // Cut the round into callers' submissions at random points.
                    var submissions = [[TransferRequest]]()
                    var start = 0
                    while start < requests.count {
                        let end = min(requests.count, start + Int.random(in: 1...40, using: &generator))
                        submissions.append(Array(requests[start..<end]))
                        start = end
                    }
                    // Some submissions record (and look at the balances); some records throw.
                    let plans = submissions.map { _ in Int.random(in: 0..<6, using: &generator) }
                    let cut = submissions
                    let seen = Seen()
                    let accounts = book.accounts
                    let batchedOutcomes = try await batched.pool.write { db in
                        try SQLiteLedger.apply(
                            zip(cut, plans).enumerated().map { index, pair in
                                let (requests, plan) = pair
                                switch plan {
                                case 0:
                                    return SQLiteLedger.Submission(requests: requests) { _, _ in throw RecordFailed() }
                                case 1, 2:
                                    return SQLiteLedger.Submission(requests: requests) { db, _ in
                                        var balances = [String: Balances]()
                                        for id in accounts { balances[id] = try SQLiteLedger.account(db, id)?.balances }
                                        seen.balances.withLock { $0[index] = balances }
                                    }
                                default:
                                    return SQLiteLedger.Submission(requests: requests, record: nil)
                                }
                            }, in: db, now: clock.now, fullCheck: true)
                    }

                    for (index, requests) in submissions.enumerated() {
                        let outcome = batchedOutcomes[index]
                        if plans[index] == 0 {
                            #expect(throws: RecordFailed.self, "round \(round); \(replay)") { try outcome.get() }
                            continue
                        }
                        let batchedResults = try outcome.get()
                        // The reference: each chain of this submission alone, in order.
                        var referenceResults = [TransferResult]()
                        for chain in Self.chains(requests) {
                            referenceResults += try await reference.createTransfers(chain)
                        }
                        #expect(
                            batchedResults.map(Self.describe) == referenceResults.map(Self.describe),
                            "round \(round), submission \(index); \(replay)")
                        if let saw = seen.balances.withLock({ $0[index] }) {
                            for id in accounts {
                                #expect(
                                    saw[id] == (try await reference.account(id))?.balances,
                                    "\(id) as the record of submission \(index) saw it, round \(round); \(replay)")
                            }
                        }
                        for (request, result) in zip(requests, batchedResults) {
                            book.history.append(request)
                            if result == .created {
                                kinds[Self.kindName(request.kind), default: 0] += 1
                                if case .pending = request.kind {
                                    book.pendings.append(
                                        (request.id, request.debitAccountID, request.creditAccountID, request.amount))
                                }
                            } else if case .failed(let error) = result {
                                kinds[error.code.rawValue, default: 0] += 1
                            }
                        }
                    }

                    clock.advance(by: Double.random(in: 0...2, using: &generator))
                    if round % 3 == 2 {
                        #expect(
                            try await batched.expirePending() == reference.expirePending(), "round \(round); \(replay)")
                    }
                    for id in book.accounts {
                        #expect(
                            try await batched.account(id) == reference.account(id), "\(id), round \(round); \(replay)")
                    }
                }

                // Every path was taken (a miss would mean a broken generator, not a broken ledger).
                for kind in [
                    "single", "pending", "post", "void", LedgerError.Code.insufficientFunds.rawValue,
                    LedgerError.Code.linkedTransferFailed.rawValue, LedgerError.Code.transferExists.rawValue,
                    LedgerError.Code.invalidExpiry.rawValue, LedgerError.Code.pendingDifferentDebitAccount.rawValue,
                ] {
                    #expect(kinds[kind, default: 0] > 0, "no \(kind); \(replay)")
                }

                try await batched.verifyInvariants()
                try await reference.verifyInvariants()
                #expect(try await Self.storedTransfers(batched) == Self.storedTransfers(reference), replay)
                for id in book.accounts {
                    let batchedStatement = try await batched.transfers(of: id, limit: 100_000).map(\.transfer.id)
                    let referenceStatement = try await reference.transfers(of: id, limit: 100_000).map(\.transfer.id)
                    #expect(batchedStatement == referenceStatement, "statement of \(id); \(replay)")
                }
            }
        }
    }

    // MARK: Setting up

    /// Per currency: a bank that may go negative, wallets (most without overdraft, funded), and
    /// a receivable that may not be credited beyond its debits.
    private static func openAccounts(_ ledger: SQLiteLedger) async throws -> [String] {
        var ids = [String]()
        for currency in [Money.eur, Money.jpy] {
            let bank = "bank-\(currency.code)"
            _ = try await ledger.createAccount(id: bank, currency: currency)
            _ = try await ledger.createAccount(
                id: "receivable-\(currency.code)", currency: currency, flags: .creditsMustNotExceedDebits)
            ids += [bank, "receivable-\(currency.code)"]
            for index in 0..<6 {
                let id = "wallet-\(currency.code)-\(index)"
                let flagged = index < 4
                _ = try await ledger.createAccount(
                    id: id, currency: currency, flags: flagged ? .debitsMustNotExceedCredits : [])
                if flagged { try await ledger.fund("fund-\(id)", from: bank, to: id, 5_000) }
                ids.append(id)
            }
        }
        return ids
    }

    // MARK: Generating

    private static func randomRequest(
        _ book: inout Book, clock: ManualClock, using generator: inout SeededGenerator
    ) -> TransferRequest {
        book.serial += 1
        let id = "r\(book.serial)"
        let debit = book.accounts.randomElement(using: &generator)!
        // Mostly another account of the same currency; sometimes the same one, or another currency.
        let currency = debit.hasSuffix("EUR") || debit.contains("-EUR-") ? "EUR" : "JPY"
        let credit =
            Int.random(in: 0..<10, using: &generator) == 0
            ? book.accounts.randomElement(using: &generator)!
            : book.accounts.filter { $0.contains(currency) && $0 != debit }.randomElement(using: &generator)!
        let amount: Int64 =
            switch Int.random(in: 0..<100, using: &generator) {
            case 0..<3: -Int64.random(in: 0...5, using: &generator)
            case 3..<13: Int64.random(in: 3_000...20_000, using: &generator)
            case 13..<15: Int64.max - Int64.random(in: 0...10, using: &generator)
            default: Int64.random(in: 1...900, using: &generator)
            }
        var request: TransferRequest
        switch Int.random(in: 0..<100, using: &generator) {
        case 0..<30:
            request = .make(id, debit, credit, amount)
        case 30..<48:
            let expiry: Date? =
                switch Int.random(in: 0..<6, using: &generator) {
                case 0: nil
                case 1: clock.now  // not in the future: refused
                case 2: clock.now - 1
                default: clock.now + Double.random(in: 0.5...6, using: &generator)
                }
            request = .make(id, debit, credit, amount, .pending(expiresAt: expiry))
        case 48..<68:
            guard let pending = Self.pickPending(book, using: &generator) else {
                return .make(id, debit, credit, amount)
            }
            let posted = Int64.random(in: -1...(pending.amount + 2), using: &generator)
            request = .post(id, pending.id, posted)
            // Sometimes the accounts are named: rightly, or not.
            switch Int.random(in: 0..<6, using: &generator) {
            case 0: (request.debitAccountID, request.creditAccountID) = (pending.debit, pending.credit)
            case 1: request.debitAccountID = debit
            case 2: request.creditAccountID = credit
            default: break
            }
        case 68..<80:
            guard let pending = Self.pickPending(book, using: &generator) else {
                return .make(id, debit, credit, amount)
            }
            request = .void(id, pending.id)
            if Int.random(in: 0..<4, using: &generator) == 0 { request.debitAccountID = debit }
        case 80..<86:
            request = .post(id, "missing-\(book.serial)", 1)
        case 86..<89:
            request = .make("bad id \(book.serial)", debit, credit, amount)
        default:
            // An earlier request again: verbatim (exists, or a new try of a refused one), or its
            // id with other fields.
            guard var earlier = book.history.randomElement(using: &generator) else {
                return .make(id, debit, credit, amount)
            }
            if Bool.random(using: &generator) { earlier.amount &+= 1 }
            request = earlier
        }
        request.linked = Int.random(in: 0..<6, using: &generator) == 0
        return request
    }

    /// A pending transfer made so far, mostly a recent one (more likely still open).
    private static func pickPending(
        _ book: Book, using generator: inout SeededGenerator
    ) -> (id: String, debit: String, credit: String, amount: Int64)? {
        guard !book.pendings.isEmpty else { return nil }
        let recent = Int.random(in: 0..<4, using: &generator) != 0
        let lower = recent ? max(0, book.pendings.count - 8) : 0
        return book.pendings[Int.random(in: lower..<book.pendings.count, using: &generator)]
    }

    /// The linked chains of one call, as the ledger cuts them.
    private static func chains(_ requests: [TransferRequest]) -> [[TransferRequest]] {
        var chains = [[TransferRequest]]()
        var current = [TransferRequest]()
        for request in requests {
            current.append(request)
            if !request.linked {
                chains.append(current)
                current = []
            }
        }
        if !current.isEmpty { chains.append(current) }
        return chains
    }

    private static func describe(_ result: TransferResult) -> String {
        switch result {
        case .created: "created"
        case .exists: "exists"
        case .failed(let error): error.code.rawValue
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

    /// Every stored transfer, as comparable text, by id (the sequence numbers may differ).
    private static func storedTransfers(_ ledger: SQLiteLedger) async throws -> [String: String] {
        try await ledger.pool.read { db in
            var stored = [String: String]()
            for row in try Row.fetchAll(db, sql: "SELECT * FROM ledger_transfers") {
                let fields: [String?] = [
                    row["kind"], row["debit_account"], row["credit_account"], String(row["amount"] as Int64),
                    row["currency"], row["pending_id"], (row["expires_at_ms"] as Int64?).map(String.init),
                    row["state"], String(row["created_at_ms"] as Int64),
                ]
                stored[row["id"]] = fields.map { $0 ?? "-" }.joined(separator: " ")
            }
            return stored
        }
    }
}
