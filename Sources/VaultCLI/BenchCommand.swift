import ArgumentParser
@_spi(CardholderData) import CardTokens
import Foundation
import Ledger
import Logging
import TokenVault
import VaultCrypto

/// `vault bench`: in-process benchmarks, each beside a limit measured in the same run.
/// Scripts/bench adds the HTTP figures (wrk against a running server).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure in-process tokenize and rewrap throughput beside the raw crypto limit.",
        discussion: """
            Works in a fresh temporary vault (never your data folder) with generated test card numbers, and \
            deletes it afterwards. Every tokenize is durable (committed with synchronous=FULL before it returns). \
            Build in release for meaningful figures: Scripts/bench does.
            """)

    @Option(help: "Cards for the throughput runs.") var cards: Int = 200_000
    @Option(help: "Concurrent callers for the single-card and single-transfer runs.") var concurrency: Int = 64
    @Flag(help: "Print {\"results\": [{\"name\", \"ops_per_s\", \"p50_ms\", \"p99_ms\", \"limit_ops_per_s\"}]}.")
    var json = false

    struct Result: Encodable {
        var name: String
        var opsPerS: Double
        var p50Ms: Double
        var p99Ms: Double
        var limitOpsPerS: Double?
    }

    func validate() throws {
        guard cards >= 1000 else { throw ValidationError("--cards must be at least 1000") }
        guard concurrency > 0 else { throw ValidationError("--concurrency must be positive") }
    }

    func run() async throws {
        try await CLI.run {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vault-bench-\(UUID())").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let paths = VaultPaths(dataDirectory: directory + "/data", keysDirectory: directory + "/keys")
            let logger = CLI.logger(level: .error)
            _ = try await Vault.initialize(paths: paths, logger: logger)
            // Random benchmark cards share BINs and last fours: the similar-card guard runs (its
            // cost is part of the figure) with a limit they never reach.
            let vault = try await Vault.open(paths: paths, logger: logger, similarCardLimit: 1_000_000)
            var results = [Result]()

            let sealLimit = Self.rawTokenizeLimit(count: min(cards, 200_000))
            let batchInputs = Self.cardInputs(count: cards)
            let batches = stride(from: 0, to: batchInputs.count, by: 1000).map {
                Array(batchInputs[$0..<min($0 + 1000, batchInputs.count)])
            }
            // Several submitters keep both cores busy: some prepare (crypto) while a commit runs, and
            // the commits they queue meanwhile are merged into one (group commit).
            let batchRun = try await Self.measure(tasks: 8, work: batches) { batch in
                _ = try await vault.tokens.tokenize(batch: batch.map { TokenizeRequest(card: $0) })
            }
            results.append(
                Result(
                    name: "tokenize_batch_1000_in_process", opsPerS: Double(cards) / batchRun.seconds,
                    p50Ms: batchRun.p50, p99Ms: batchRun.p99, limitOpsPerS: sealLimit))

            let singles = Array(Self.cardInputs(count: min(cards, 50_000)))
            let singleRun = try await Self.measure(tasks: concurrency, work: singles) { card in
                _ = try await vault.tokens.tokenize(TokenizeRequest(card: card))
            }
            results.append(
                Result(
                    name: "tokenize_single_in_process_c\(concurrency)",
                    opsPerS: Double(singles.count) / singleRun.seconds,
                    p50Ms: singleRun.p50, p99Ms: singleRun.p99, limitOpsPerS: sealLimit))

            // Rewrap everything just written under a new key.
            _ = try await vault.keys.rotate()
            let total = try await vault.store.recordsNotUnder(version: vault.keyRing.active.version)
            let rewrapLimit = Self.rawRewrapLimit(count: min(total, 200_000))
            let start = ContinuousClock.now
            var batchTimes = [Double]()
            var last = start
            let rewrapped = try await vault.keys.rewrap(batchSize: 5000) { done, _ in
                let now = ContinuousClock.now
                if done > 0 { batchTimes.append((now - last).milliseconds) }
                last = now
            }
            let seconds = (ContinuousClock.now - start).seconds
            results.append(
                Result(
                    name: "rewrap_batch_5000", opsPerS: Double(rewrapped) / seconds,
                    p50Ms: Self.percentile(batchTimes, 0.5), p99Ms: Self.percentile(batchTimes, 0.99),
                    limitOpsPerS: rewrapLimit))

            results += try await Self.ledgerTransfers(
                directory: directory + "/wallet", transfers: cards, concurrency: concurrency)
            results.append(
                try await Self.walletTransfers(directory: directory + "/wallets", transfers: min(cards, 50_000)))

            if json {
                try CLI.printJSON(["results": results])
            } else {
                let width = max(39, (results.map(\.name.count).max() ?? 0) + 1)
                print(
                    "name".padding(toLength: width, withPad: " ", startingAt: 0)
                        + "ops/s        p50 ms    p99 ms    limit ops/s")
                for result in results {
                    print(
                        result.name.padding(toLength: width, withPad: " ", startingAt: 0)
                            + String(
                                format: "%-13.0f%-10.3f%-10.3f%.0f", result.opsPerS, result.p50Ms, result.p99Ms,
                                result.limitOpsPerS ?? 0))
                }
                print("(latency of a batch for batch runs and per rewrap transaction of 5000 records)")
            }
        }
    }

    /// Durable single-phase transfers between 1,000 no-overdraft accounts, invariants checked in
    /// every commit: in calls of 1,000 from 4 concurrent callers (their commits are shared), then
    /// one transfer per call from `concurrency` concurrent callers (as HTTP requests arrive).
    static func ledgerTransfers(directory: String, transfers: Int, concurrency: Int) async throws -> [Result] {
        let ledger = try SQLiteLedger(directory: directory)
        let euro = try Currency("EUR")
        _ = try await ledger.createAccount(id: "bank", currency: euro)
        let accounts = 1000
        for index in 0..<accounts {
            _ = try await ledger.createAccount(id: "w\(index)", currency: euro, flags: .debitsMustNotExceedCredits)
        }
        _ = try await ledger.createTransfers(
            (0..<accounts).map {
                TransferRequest(id: "fund-\($0)", debitAccountID: "bank", creditAccountID: "w\($0)", amount: 1_000_000)
            })
        func transfer(_ index: Int, prefix: String) -> TransferRequest {
            TransferRequest(
                id: "\(prefix)\(index)", debitAccountID: "w\(index % accounts)",
                creditAccountID: "w\((index * 7 + 1) % accounts)", amount: 1)
        }
        let batches = stride(from: 0, to: transfers, by: 1000).map { start in
            (start..<min(start + 1000, transfers)).map { transfer($0, prefix: "t") }
        }
        let batchRun = try await measure(tasks: 4, work: batches) { batch in
            let results = try await ledger.createTransfers(batch)
            precondition(results.allSatisfy { $0 == .created }, "a benchmark transfer failed")
        }
        let singles = (0..<min(transfers, 50_000)).map { transfer($0, prefix: "s") }
        let singleRun = try await measure(tasks: concurrency, work: singles) { request in
            let results = try await ledger.createTransfers([request])
            precondition(results == [.created], "a benchmark transfer failed")
        }
        try await ledger.verifyInvariants()
        return [
            Result(
                name: "ledger_transfers_batch_1000_in_process", opsPerS: Double(transfers) / batchRun.seconds,
                p50Ms: batchRun.p50, p99Ms: batchRun.p99, limitOpsPerS: nil),
            Result(
                name: "ledger_transfers_single_concurrent_in_process",
                opsPerS: Double(singles.count) / singleRun.seconds, p50Ms: singleRun.p50, p99Ms: singleRun.p99,
                limitOpsPerS: nil),
        ]
    }

    /// Luhn-valid generated PANs (never real cards: random digits under test BINs).
    static func cardInputs(count: Int) -> [CardInput] {
        let bins = ["411111", "424242", "555555", "601111"]
        return (0..<count).map { index in
            var digits = Array(bins[index % bins.count].utf8)
            for _ in 0..<9 { digits.append(UInt8(ascii: "0") + UInt8(SecureRandom.uniform(10))) }
            digits.append(UInt8(ascii: "0"))
            let check = Luhn.checksum(digits: digits)
            digits[15] = UInt8(ascii: "0") + UInt8((10 - check) % 10)
            return try! CardInput(pan: String(decoding: digits, as: UTF8.self), expMonth: 12, expYear: 2040, cvv: nil)
        }
    }

    /// The raw per-card crypto of tokenize on one core: random token + keyed hash + secretbox
    /// seal of the plaintext record, with no storage.
    static func rawTokenizeLimit(count: Int) -> Double {
        let key = SecretBytes(randomCount: 32)
        let hashKey = SecretBytes(randomCount: 32)
        let inputs = cardInputs(count: 1000)
        var plaintext = [UInt8](repeating: 0x41, count: 48)
        let start = ContinuousClock.now
        var pool = RandomPool(byteCount: count * 56)
        var sink = 0
        for index in 0..<count {
            let card = inputs[index % inputs.count]
            pool.take(16) { token in sink &+= Int(token[0]) }
            let fingerprint = card.withPANDigits {
                KeyedHash.hash(UnsafeRawBufferPointer($0), key: hashKey, outputByteCount: 16)
            }
            plaintext[0] = fingerprint[0]
            let box = pool.take(24) { nonce in plaintext.withUnsafeBytes { SecretBox.seal($0, key: key, nonce: nonce) }
            }
            sink &+= Int(box[30])
        }
        let seconds = (ContinuousClock.now - start).seconds
        precondition(sink != -1)
        return Double(count) / seconds
    }

    /// The raw per-record crypto of rewrap on one core: open under the old key, seal under the new.
    static func rawRewrapLimit(count: Int) -> Double {
        let oldKey = SecretBytes(randomCount: 32)
        let newKey = SecretBytes(randomCount: 32)
        let plaintext = [UInt8](repeating: 0x41, count: 48)
        let box = plaintext.withUnsafeBytes { SecretBox.seal($0, key: oldKey) }
        let scratch = SecretBytes(zeroedCount: 48)
        var pool = RandomPool(byteCount: max(count, 1) * 24)
        var sink = 0
        let start = ContinuousClock.now
        for _ in 0..<count {
            try! scratch.withUnsafeMutableBytes { buffer in
                try box.withUnsafeBytes { try SecretBox.open($0, key: oldKey, into: buffer) }
            }
            let sealed = pool.take(24) { nonce in
                scratch.withUnsafeBytes { SecretBox.seal($0, key: newKey, nonce: nonce) }
            }
            sink &+= Int(sealed[40])
        }
        let seconds = (ContinuousClock.now - start).seconds
        precondition(sink != -1)
        return Double(count) / seconds
    }

    struct Timing {
        var seconds: Double
        var p50: Double
        var p99: Double
    }

    /// Runs `work` items on `tasks` concurrent tasks; returns wall time and per-item latency.
    static func measure<Item: Sendable>(
        tasks: Int, work: [Item], _ body: @escaping @Sendable (Item) async throws -> Void
    ) async throws -> Timing {
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for worker in 0..<tasks {
                group.addTask {
                    var latencies = [Double]()
                    for index in stride(from: worker, to: work.count, by: tasks) {
                        let itemStart = ContinuousClock.now
                        try await body(work[index])
                        latencies.append((ContinuousClock.now - itemStart).milliseconds)
                    }
                    return latencies
                }
            }
            return try await group.reduce(into: [Double]()) { $0 += $1 }
        }
        return Timing(
            seconds: (ContinuousClock.now - start).seconds, p50: percentile(latencies, 0.5),
            p99: percentile(latencies, 0.99))
    }

    static func percentile(_ values: [Double], _ fraction: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction))]
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var milliseconds: Double { seconds * 1000 }
}
