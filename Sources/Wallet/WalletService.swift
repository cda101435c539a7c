import CardTokens
import Ledger

/// Wallets over the ledger (work in progress).
public enum WalletPlaceholder {}
