import Foundation
import SQLiteSupport
import Testing
import VaultCrypto

@testable import TokenVault

/// docs/CRYPTO.md §8.1 and §17: the fingerprint a caller sees, against the published vectors.
@Suite("Caller fingerprints")
struct CallerFingerprintTests {
    static let root = (0x20...0x3f).map(UInt8.init).withUnsafeBytes { SecretBytes(copying: $0) }

    static func derived(_ context: String) throws -> SecretBytes {
        try KeyDerivation.deriveSubkey(id: 1, context: context, from: root)
    }

    @Test("Known answers: the CALLERFP subkey and two caller fingerprints of 4111111111111111")
    func knownAnswers() throws {
        let callerKey = try Self.derived(KeyRing.Subkey.callerFingerprint.rawValue)
        #expect(
            callerKey.withUnsafeBytes { Hex.encode($0) }
                == "7bb5e0e1f8d2cbf798af9cf3469e0f02844c28c2ab6bac57803325ff7d619056")
        let internalFingerprint = KeyedHash.hash(
            Array("4111111111111111".utf8), key: try Self.derived(KeyRing.Subkey.fingerprint.rawValue),
            outputByteCount: 16)
        #expect(Hex.encode(internalFingerprint) == "588d4eb0ba5522d792e7b04a17351f63")
        let key = "key:abcdefgh01234567"
        #expect(
            TokenVault.callerFingerprint(
                internalFingerprint, tenant: "default", reader: key, creator: key, key: callerKey)
                == "5a5f5a28691202a23903deee6aa4f1bc")
        #expect(
            TokenVault.callerFingerprint(
                internalFingerprint, tenant: "default", reader: "wallet", creator: key, key: callerKey)
                == "0b6186da393dfaa1f93c401a6904c1e2")
    }

    @Test("Each of tenant, reader and creator changes the value; the length prefixes keep them apart")
    func everyPartCounts() throws {
        let key = try Self.derived(KeyRing.Subkey.callerFingerprint.rawValue)
        let internalFingerprint = [UInt8](repeating: 7, count: 16)
        let values = [
            ("default", "key:a", "key:a"), ("other", "key:a", "key:a"), ("default", "key:b", "key:a"),
            ("default", "key:a", "key:b"), ("default", "key:ak", "ey:a"), ("defaultk", "ey:a", "key:a"),
        ].map { TokenVault.callerFingerprint(internalFingerprint, tenant: $0.0, reader: $0.1, creator: $0.2, key: key) }
        #expect(Set(values).count == values.count)
    }
}
