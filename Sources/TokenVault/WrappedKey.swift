import VaultCrypto

/// Keys at rest, wrapped (secretbox-encrypted) under the master key.
///
/// Layout: `nonce (24) ‖ secretbox(master, label (4 ASCII) ‖ u32 BE version ‖ key (32))`.
/// The label and version inside the authenticated plaintext bind a wrapped key to its row, so a
/// wrapped data key copied onto another version's row fails to unwrap.
enum WrappedKey {
    /// Labels of the kinds of wrapped key.
    enum Label: String {
        /// A data-encryption key (DEK) for card records.
        case dataKey = "DEK1"
        /// The newest root key, from which the fingerprint, credential, audit and row MAC keys are
        /// derived.
        case root = "ROOT"
        /// A root key that a newer version has superseded: re-wrapped with this label by the
        /// rotation that added the newer one, so that deleting the newer row does not make it the
        /// newest again (docs/CRYPTO.md §5, §13.9).
        case supersededRoot = "ROLD"
        /// A card-verification key (CVK), which derives the CVVs of the cards the vault issues
        /// (docs/CRYPTO.md §21).
        case cardVerificationKey = "CVK1"
    }

    static let keyByteCount = 32
    static let plaintextByteCount = 8 + keyByteCount

    static func wrap(_ key: SecretBytes, label: Label, version: UInt32, master: SecretBytes) -> [UInt8] {
        precondition(key.count == keyByteCount)
        let plaintext = SecretBytes(count: plaintextByteCount) { buffer in
            buffer.copyBytes(from: Array(label.rawValue.utf8))
            withUnsafeBytes(of: version.bigEndian) { buffer[4..<8].copyBytes(from: $0) }
            key.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[8...]).copyMemory(from: $0) }
        }
        return plaintext.withUnsafeBytes { SecretBox.seal($0, key: master) }
    }

    /// - Throws: ``VaultError`` `master_key_wrong` when the box does not open or is bound to
    ///   another label or version.
    static func unwrap(_ wrapped: [UInt8], label: Label, version: UInt32, master: SecretBytes) throws -> SecretBytes {
        let plaintext: SecretBytes
        do {
            plaintext = try wrapped.withUnsafeBytes { try SecretBox.open($0, key: master) }
        } catch {
            throw VaultError(.wrongMasterKey, "the master key does not open the key ring")
        }
        let matches = plaintext.withUnsafeBytes { bytes -> Bool in
            guard bytes.count == plaintextByteCount else { return false }
            let expectedVersion = withUnsafeBytes(of: version.bigEndian) { Array($0) }
            return Array(bytes[0..<4]) == Array(label.rawValue.utf8) && Array(bytes[4..<8]) == expectedVersion
        }
        guard matches else {
            throw VaultError(.recordCorrupt, "wrapped key for \(label.rawValue) v\(version) is bound to another key")
        }
        return plaintext.withUnsafeBytes { SecretBytes(copying: UnsafeRawBufferPointer(rebasing: $0[8...])) }
    }
}
