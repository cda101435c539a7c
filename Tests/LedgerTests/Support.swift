import Foundation
import Ledger
import Synchronization
import Testing
import VaultTestSupport

// Helpers shared by the ledger suites. Every test opens its own ledger in its own temporary folder.

// MARK: - Sandboxes

/// Runs `body` with a fresh ledger in a temporary folder of its own, removed afterwards.
/// Unless `fullCheckEvery` says otherwise, every commit also checks the invariants in SQL over
/// all accounts (beside its own incremental check), so that a test fails at the commit that
/// breaks one.
func withLedger<R>(
    clock: ManualClock? = nil, fullCheckEvery: Int = 1, _ body: (SQLiteLedger, String) async throws -> R
) async throws -> R {
    let directory =
        FileManager.default.temporaryDirectory
        .appendingPathComponent("ledger-tests-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var now: @Sendable () -> Date = { Date() }
    if let clock { now = clock.function }
    let ledger = try SQLiteLedger(directory: directory, clock: now, fullCheckEvery: fullCheckEvery)
    return try await body(ledger, directory)
}

// MARK: - Clock

// MARK: - Random

// MARK: - Currencies and requests

enum Money {
    static let eur = try! Currency("EUR")
    static let usd = try! Currency("USD")
    static let jpy = try! Currency("JPY")
}

extension TransferRequest {
    /// A request with the arguments in the order a reader expects: id, from, to, amount.
    static func make(
        _ id: String, _ debit: String, _ credit: String, _ amount: Int64, _ kind: TransferKind = .single,
        linked: Bool = false
    ) -> TransferRequest {
        TransferRequest(
            id: id, debitAccountID: debit, creditAccountID: credit, amount: amount, kind: kind, linked: linked)
    }

    /// Posts `amount` of the pending transfer `pendingID`.
    static func post(_ id: String, _ pendingID: String, _ amount: Int64) -> TransferRequest {
        TransferRequest(
            id: id, debitAccountID: "", creditAccountID: "", amount: amount, kind: .post(pendingID: pendingID))
    }

    /// Voids the pending transfer `pendingID`.
    static func void(_ id: String, _ pendingID: String) -> TransferRequest {
        TransferRequest(id: id, debitAccountID: "", creditAccountID: "", amount: 0, kind: .void(pendingID: pendingID))
    }
}

extension TransferResult {
    /// The error code of a failed result, `nil` for `created` and `exists`.
    var code: LedgerError.Code? {
        if case .failed(let error) = self { return error.code }
        return nil
    }
}

extension SQLiteLedger {
    /// Creates one transfer and returns its result.
    func submit(_ request: TransferRequest) async throws -> TransferResult {
        let results = try await createTransfers([request])
        try #require(results.count == 1)
        return results[0]
    }

    /// The balances of an account that must exist.
    func balances(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Balances {
        let account = try #require(try await account(id), "no account \(id)", sourceLocation: sourceLocation)
        return account.balances
    }

    /// Moves `amount` from `from` to `to` at once and requires that it is created.
    func fund(
        _ id: String, from: String, to: String, _ amount: Int64, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let result = try await submit(.make(id, from, to, amount))
        try #require(result == .created, "funding \(id) failed: \(result)", sourceLocation: sourceLocation)
    }
}
