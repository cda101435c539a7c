@_spi(CardholderData) public import CardTokens
import TokenVault
import VaultCrypto

/// What the CDE found for the card data of a card-network message: the card's token, or why
/// the card is declined before the wallet side is asked. Holds no card data.
public enum NetworkCardCheck: Sendable, Hashable {
    /// One of our issued cards, its expiry and CVV as sent.
    case card(Token)
    /// No card this vault issued has that PAN.
    case notFound
    /// The expiry or the CVV sent is not the card's. One case for both: an answer (or a time)
    /// that told them apart would let the expiry be guessed first and the CVV after.
    case mismatch(Token)
}

extension VaultCardIssuer {
    /// Resolves the card data of a network message to the issued card it names, by the PAN's
    /// fingerprint (never by a PAN stored in the clear), and checks the expiry and the CVV (derived
    /// at this moment under the card's CVK, compared in constant time). A found card costs the
    /// same work whatever was sent: the CVV is always derived and both fields always compared.
    /// The PAN and CVV stay in `card` (wiped with it); the derived CVV is wiped before this returns.
    public func check(_ card: CardInput) async throws -> NetworkCardCheck {
        let fingerprints = card.withPANDigits { tokens.fingerprints(ofPAN: $0) }
        guard let stored = try await tokens.issuedCard(fingerprints: fingerprints) else { return .notFound }
        let token = stored.metadata.token
        let cvvMatches = try await withCVV(of: token, tenant: stored.tenant) { derived in
            card.withCVVDigits { sent in
                // The network listener requires a CVV; a card without one is never a match.
                guard let sent else { return false }
                return ConstantTime.equals(UnsafeRawBufferPointer(derived), UnsafeRawBufferPointer(sent))
            }
        }
        let expiryMatches = stored.metadata.expMonth == card.expMonth && stored.metadata.expYear == card.expYear
        return cvvMatches && expiryMatches ? .card(token) : .mismatch(token)
    }
}
