public import CardTokens
public import Foundation
import Ledger

// Transfers between wallets, and the retention of idempotent outcomes.
extension WalletService {
    // MARK: Transfers

    /// Moves `amount` from one wallet to another of the same currency, at once.
    /// - Throws: `wallet_not_found`, `same_wallet`, `currency_mismatch`, `invalid_amount`,
    ///   `unsupported_currency`, `insufficient_funds`, `amount_overflow`, or an idempotency error.
    public func transfer(
        from source: String, to destination: String, amount: Int64, currency code: String,
        idempotency key: IdempotencyKey, tenant: String = Principal.defaultTenant
    ) async throws -> WalletTransfer {
        let request = Self.describe("transfer", source, destination, String(amount), code)
        let now = clock()
        return try await idempotency.run(key, request: request, now: now) {
            (recorder: IdempotencyRules.Recorder<WalletTransfer>) in
            guard amount > 0 else {
                throw WalletError(.invalidAmount, "amount must be a positive number of minor units")
            }
            let currency = try Self.currency(code)
            guard source != destination else { throw WalletError(.sameWallet, "from_wallet and to_wallet must differ") }
            for wallet in [source, destination] where try await walletCurrency(wallet, tenant: tenant) != currency {
                throw WalletError(.currencyMismatch, "a wallet of the transfer does not hold this currency")
            }
            let transfer = WalletTransfer(
                id: RandomID.make("tr", now: now), fromWallet: source, toWallet: destination, amount: amount,
                currency: currency.code, createdAt: now)
            let success = try recorder.encode(.success(transfer))
            let results = try await store.commit(
                [
                    TransferRequest(
                        id: transfer.id, debitAccountID: source, creditAccountID: destination, amount: amount)
                ],
                recording: { results in
                    switch results[0] {
                    case .created, .exists: [recorder.write(encoded: success)]
                    case .failed(let error): [try recorder.write(.failure(Self.walletError(error)))]
                    }
                })
            if case .failed(let error) = results[0] {
                throw IdempotencyRules.RecordedFailure(error: Self.walletError(error))
            }
            return transfer
        }
    }

    // MARK: Retention

    /// Forgets the Idempotency-Key outcomes stored before `cutoff` (``IdempotencyRules``); returns
    /// how many. A request retried under a forgotten key runs again as a new request, except a
    /// top-up: its attempt keeps the key, so a retry re-sends the same acquirer reference, gets
    /// the acquirer's first answer and books nothing twice.
    @discardableResult
    public func purgeIdempotencyOutcomes(before cutoff: Date) async throws -> Int {
        try await idempotency.purge(before: cutoff)
    }

    static func walletError(_ error: LedgerError) -> WalletError {
        switch error.code {
        case .insufficientFunds: WalletError(.insufficientFunds, "the source wallet has insufficient funds")
        case .overflow: WalletError(.amountOverflow, "the amount would overflow a balance")
        case .accountNotFound: WalletError.walletNotFound
        case .currencyMismatch: WalletError(.currencyMismatch, "the wallets hold different currencies")
        case .invalidAmount: WalletError(.invalidAmount, "amount must be a positive number of minor units")
        default: WalletError(.internalFailure, "the ledger refused the transfer (\(error.code))")
        }
    }
}
