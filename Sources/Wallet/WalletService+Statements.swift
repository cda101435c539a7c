public import CardTokens
import Foundation
import Ledger

// Statements: a wallet's transfers as entries, newest first, in cursor pages.
extension WalletService {
    // MARK: Statements

    /// A wallet's statement, oldest first, after ledger sequence `after`; `nextAfter` is the
    /// cursor of the next page, `nil` on the last.
    /// - Throws: `wallet_not_found`, `invalid_cursor`.
    public func transactions(
        of walletID: String, after: Int64 = 0, limit: Int = 100, tenant: String = Principal.defaultTenant
    ) async throws
        -> (entries: [StatementEntry], nextAfter: Int64?)
    {
        guard after >= 0, (1...1000).contains(limit) else {
            throw WalletError(.invalidCursor, "after must be ≥ 0 and limit 1 to 1000")
        }
        _ = try await walletCurrency(walletID, tenant: tenant)
        // Only money that moved is listed: single transfers and posted holds (a top-up's hold and
        // its void are not movements; a posted hold shows under the top-up's id). Ledger rows are
        // read in chunks until the page is full and one more entry shows that another follows.
        var entries = [StatementEntry]()
        var cursor = after
        var more = false
        scan: while true {
            let chunk = try await store.ledger.transfers(of: walletID, after: cursor, limit: limit + 1)
            for (sequence, transfer) in chunk {
                cursor = sequence
                guard let entry = Self.entry(sequence, transfer, of: walletID) else { continue }
                guard entries.count < limit else {
                    more = true
                    break scan
                }
                entries.append(entry)
            }
            if chunk.count <= limit { break }
        }
        return (entries, more ? entries.last?.sequence : nil)
    }

    static func entry(_ sequence: Int64, _ transfer: Transfer, of walletID: String) -> StatementEntry? {
        guard transfer.kind == "single" || transfer.kind == "post" else { return nil }
        let outgoing = transfer.debitAccountID == walletID
        let counterparty = outgoing ? transfer.creditAccountID : transfer.debitAccountID
        let kind: StatementEntry.Kind =
            if counterparty == cardNetworkAccountID(transfer.currency.code) {
                outgoing ? .cardPurchase : .cardRefund
            } else if outgoing {
                .transferOut
            } else {
                counterparty.hasPrefix("acquirer_receivable:") ? .topUp : .transferIn
            }
        return StatementEntry(
            sequence: sequence, id: transfer.kind == "post" ? transfer.pendingID ?? transfer.id : transfer.id,
            kind: kind, amount: outgoing ? -transfer.amount : transfer.amount, currency: transfer.currency.code,
            counterpartyWallet: [.transferIn, .transferOut].contains(kind) ? counterparty : nil,
            createdAt: transfer.createdAt)
    }
}
