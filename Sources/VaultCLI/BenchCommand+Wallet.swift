import CardTokens
import Ledger
import Wallet

extension BenchCommand {
    /// Wallet transfers as `POST /v1/transfers` makes them, without HTTP: one transfer per call,
    /// each under its own Idempotency-Key (stored in the same commit), from 64 concurrent callers
    /// over 64 funded wallets.
    static func walletTransfers(directory: String, transfers: Int) async throws -> Result {
        let ledger = try SQLiteLedger(directory: directory)
        let wallets = WalletService(store: try SQLiteWalletStore(ledger: ledger), cards: NoCards(), authorizer: nil)
        let euro = try Currency("EUR")
        var ids = [String]()
        for index in 0..<64 {
            let key = try IdempotencyKey(owner: "bench", key: "wallet-\(index)")
            ids.append(try await wallets.createWallet(ownerRef: "bench-\(index)", currency: "EUR", idempotency: key).id)
        }
        // Funded straight from the receivable account: top-ups would need an acquirer.
        _ = try await ledger.createTransfers(
            ids.map { id in
                TransferRequest(
                    id: "fund-\(id)", debitAccountID: WalletService.receivableAccountID(euro), creditAccountID: id,
                    amount: 1_000_000_000)
            })
        let run = try await measure(tasks: 64, work: Array(0..<transfers)) { [ids] index in
            _ = try await wallets.transfer(
                from: ids[index % ids.count], to: ids[(index + 1) % ids.count], amount: 1, currency: "EUR",
                idempotency: try IdempotencyKey(owner: "bench", key: "transfer-\(index)"))
        }
        try await ledger.verifyInvariants()
        return Result(
            name: "wallet_transfers_single_c64_in_process", opsPerS: Double(transfers) / run.seconds, p50Ms: run.p50,
            p99Ms: run.p99, limitOpsPerS: nil)
    }

    /// The bench saves no cards.
    private struct NoCards: CardDirectory {
        func metadata(of token: Token, tenant: String) async throws -> CardMetadata? { nil }
    }
}
