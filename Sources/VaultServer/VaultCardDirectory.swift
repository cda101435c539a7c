import CardTokens
import TokenVault
import Wallet

/// The vault, as the wallet sees it: token metadata, `nil` for a token it does not hold.
struct VaultCardDirectory: CardDirectory {
    let tokens: TokenVault

    var fingerprintVersion: UInt32 { tokens.fingerprintVersion }

    func metadata(of token: Token, tenant: String) async throws -> CardMetadata? {
        do {
            return try await tokens.metadata(of: token, for: .wallet(tenant: tenant))
        } catch let error as VaultError where error.code == .tokenNotFound {
            return nil
        }
    }
}
