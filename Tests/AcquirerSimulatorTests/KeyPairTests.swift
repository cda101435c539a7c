import AcquirerSimulator
import Detokenization
import Foundation
import Testing
import VaultCrypto
import VaultTestSupport

/// The acquirer's key files (`acquirer.key`, `acquirer.pub`) and the gateway's view of them.
@Suite("Acquirer key pair")
struct KeyPairTests {
    @Test func firstStartCreatesTheKeyFilesWithTheirModes() async throws {
        try await withTemporaryDirectory("acquirer-tests") { root in
            let directory = root + "/state"
            let keyPair = try AcquirerKeyPair.loadOrCreate(directory: root + "/state")
            let secretPath = directory + "/acquirer.key"
            let publicPath = directory + "/acquirer.pub"
            #expect(try Bytes.mode(of: secretPath) == 0o600)
            #expect(try Bytes.mode(of: publicPath) == 0o644)
            #expect(try Data(contentsOf: URL(fileURLWithPath: secretPath)).count == 32)
            #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: publicPath))) == keyPair.publicKey)
            #expect(try AcquirerKeyPair.readPublicKey(path: publicPath) == keyPair.publicKey)
            // A second start loads the same pair.
            let again = try AcquirerKeyPair.loadOrCreate(directory: directory)
            #expect(again.publicKey == keyPair.publicKey)
            #expect(again.keyPair.secretKey == keyPair.keyPair.secretKey)
        }
    }

    @Test func aBoxSealedToThePublicFileOpensWithTheLoadedKey() async throws {
        try await withTemporaryDirectory("acquirer-tests") { root in
            _ = try AcquirerKeyPair.loadOrCreate(directory: root)
            let publicKey = try AcquirerKeyPair.readPublicKey(path: root + "/acquirer.pub")
            let message = Array(#"{"pan":"4111111111111111"}"#.utf8)
            let sealed = try message.withUnsafeBytes { try SealedBox.seal($0, to: publicKey) }
            let loaded = try AcquirerKeyPair.loadOrCreate(directory: root)
            let opened = try sealed.withUnsafeBytes { try SealedBox.open($0, with: loaded.keyPair) }
            #expect(opened.withUnsafeBytes { [UInt8]($0) } == message)
        }
    }

    @Test func theDerivedPublicKeyIsTheGeneratedOne() throws {
        let generated = SealedBox.KeyPair.generate()
        let derived = try SealedBox.KeyPair(secretKey: generated.secretKey)
        #expect(derived.publicKey == generated.publicKey)
        #expect(throws: VaultCryptoError.self) { try SealedBox.KeyPair(secretKey: SecretBytes(randomCount: 31)) }
    }

    @Test(arguments: [0o640, 0o604, 0o660, 0o644, 0o601, 0o610])
    func aSecretKeyOthersCanReachIsRefused(permissions: Int) async throws {
        try await withTemporaryDirectory("acquirer-tests") { root in
            _ = try AcquirerKeyPair.loadOrCreate(directory: root)
            try FileManager.default.setAttributes(
                [.posixPermissions: permissions], ofItemAtPath: root + "/acquirer.key")
            let error = try #require(throws: AcquirerKeyError.self) {
                try AcquirerKeyPair.loadOrCreate(directory: root)
            }
            #expect(error.code == .permissionsTooOpen)
            #expect(error.description.contains("acquirer.key") && error.description.contains("chmod 600"))
            // The simulator refuses to start on it too.
            #expect(throws: AcquirerKeyError.self) {
                try AcquirerSimulator.open(stateDirectory: root, logger: TestLog.quiet())
            }
        }
    }

    @Test func aSecretKeyOfTheWrongSizeIsRefused() async throws {
        try await withTemporaryDirectory("acquirer-tests") { root in
            _ = try AcquirerKeyPair.loadOrCreate(directory: root)
            let path = root + "/acquirer.key"
            let handle = try #require(FileHandle(forWritingAtPath: path))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data([0x0A]))
            try handle.close()
            let error = try #require(throws: AcquirerKeyError.self) {
                try AcquirerKeyPair.loadOrCreate(directory: root)
            }
            #expect(error.code == .wrongSize)
            #expect(error.description.contains("33 bytes"))
        }
    }

    @Test func aPublicKeyThatDoesNotMatchIsRefused() async throws {
        try await withTemporaryDirectory("acquirer-tests") { root in
            _ = try AcquirerKeyPair.loadOrCreate(directory: root)
            let other = SealedBox.KeyPair.generate()
            try Data(other.publicKey).write(to: URL(fileURLWithPath: root + "/acquirer.pub"))
            let error = try #require(throws: AcquirerKeyError.self) {
                try AcquirerKeyPair.loadOrCreate(directory: root)
            }
            #expect(error.code == .mismatch)
        }
    }

    @Test func aMissingPublicKeyIsWrittenAgainButAMissingSecretKeyIsNotReplaced() async throws {
        try await withTemporaryDirectory("acquirer-tests") { root in
            let original = try AcquirerKeyPair.loadOrCreate(directory: root)
            try FileManager.default.removeItem(atPath: root + "/acquirer.pub")
            #expect(try AcquirerKeyPair.loadOrCreate(directory: root).publicKey == original.publicKey)
            #expect(try Bytes.mode(of: root + "/acquirer.pub") == 0o644)
            try FileManager.default.removeItem(atPath: root + "/acquirer.key")
            let error = try #require(throws: AcquirerKeyError.self) {
                try AcquirerKeyPair.loadOrCreate(directory: root)
            }
            #expect(error.code == .missing)
            #expect(error.description.contains("acquirer.key"))
        }
    }

    @Test func theGatewayEndpointReadsThePublicKeyFile() async throws {
        try await withTemporaryDirectory("acquirer-tests") { root in
            let keyPair = try AcquirerKeyPair.loadOrCreate(directory: root)
            let endpoint = try AcquirerEndpoint(
                baseURL: "http://127.0.0.1:8090/", publicKeyFile: root + "/acquirer.pub", timeout: .seconds(2))
            #expect(endpoint.publicKey == keyPair.publicKey)
            #expect(endpoint.baseURL == "http://127.0.0.1:8090")
            #expect(endpoint.timeout == .seconds(2))
            #expect(AcquirerEndpoint.defaultTimeout == .seconds(5))

            let missing = try #require(throws: AcquirerEndpointError.self) {
                try AcquirerEndpoint(baseURL: "http://127.0.0.1:8090", publicKeyFile: root + "/nope.pub")
            }
            #expect(missing.code == .publicKeyMissing)
            // e.g. a public key written as a line of base64 instead of raw bytes
            try Data(repeating: 0x41, count: 44).write(to: URL(fileURLWithPath: root + "/base64.pub"))
            let wrongSize = try #require(throws: AcquirerEndpointError.self) {
                try AcquirerEndpoint(baseURL: "http://127.0.0.1:8090", publicKeyFile: root + "/base64.pub")
            }
            #expect(wrongSize.code == .publicKeyWrongSize)
            #expect(wrongSize.message.contains("44 bytes"))
            for url in ["ftp://127.0.0.1", "127.0.0.1:8090", "http://", "http://h/?q=1", "http://u:p@h"] {
                let error = try #require(throws: AcquirerEndpointError.self) {
                    try AcquirerEndpoint(baseURL: url, publicKey: keyPair.publicKey)
                }
                #expect(error.code == .invalidURL, "\(url)")
            }
            #expect(throws: AcquirerEndpointError.self) {
                try AcquirerEndpoint(baseURL: "http://h", publicKey: keyPair.publicKey, timeout: .zero)
            }
        }
    }

    @Test("Finding 17: acquirer.pub writable by group or others is refused; a pinned key must match")
    func thePublicKeyFileIsCheckedAndCanBePinned() async throws {
        try await withTemporaryDirectory("acquirer-tests") { root in
            let keyPair = try AcquirerKeyPair.loadOrCreate(directory: root)
            let path = root + "/acquirer.pub"
            let hex = keyPair.publicKey.map { String(format: "%02x", $0) }.joined()
            let pinned = try AcquirerEndpoint(baseURL: "http://127.0.0.1:8090", publicKeyFile: path, pin: hex)
            #expect(pinned.publicKeyHex == hex)
            _ = try AcquirerEndpoint(baseURL: "http://127.0.0.1:8090", publicKeyFile: path, pin: hex.uppercased())
            let mismatch = try #require(throws: AcquirerEndpointError.self) {
                try AcquirerEndpoint(
                    baseURL: "http://127.0.0.1:8090", publicKeyFile: path, pin: String(repeating: "0", count: 64))
            }
            #expect(mismatch.code == .publicKeyPinMismatch)
            for mode in [0o666, 0o646, 0o664, 0o622] {
                try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
                let unsafe = try #require(throws: AcquirerEndpointError.self) {
                    try AcquirerEndpoint(baseURL: "http://127.0.0.1:8090", publicKeyFile: path)
                }
                #expect(unsafe.code == .publicKeyUnsafe, "mode \(String(mode, radix: 8))")
            }
            // A folder others may write to (and replace the file in) is refused too, unless sticky.
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
            try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: root)
            #expect(throws: AcquirerEndpointError.self) {
                try AcquirerEndpoint(baseURL: "http://127.0.0.1:8090", publicKeyFile: path)
            }
            try FileManager.default.setAttributes([.posixPermissions: 0o1777], ofItemAtPath: root)
            _ = try AcquirerEndpoint(baseURL: "http://127.0.0.1:8090", publicKeyFile: path)
            try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: root)
        }
    }
}
