import Testing

@testable import VaultCrypto

/// `crypto_kdf_derive_from_key` (BLAKE2b-based subkey derivation).
///
/// Vectors: libsodium `test/default/kdf.c` / `test/default/kdf.exp` (jedisct1/libsodium):
/// context "KDF test", master key 0x00...0x1f.
/// - `firstTen`: the first ten lines, subkey ids 0...9, 64-byte (`crypto_kdf_BYTES_MAX`) subkeys.
/// - `byLength`: the second loop, where subkey id == subkey length; only lengths 16...64
///   succeed, and a selection of those lines is used.
/// Each line was also recomputed with Python's independent `hashlib.blake2b(b"", key=master,
/// digest_size=length, salt=id as 8 little-endian bytes + 8 zero bytes, person=context + 8 zero
/// bytes)`, which matched.
@Suite struct KeyDerivationTests {
    static let context = "KDF test"

    static let firstTen: [HexVector] = [
        HexVector(
            0,
            "a0c724404728c8bb95e5433eb6a9716171144d61efb23e74b873fcbeda51d807",
            "1b5d70aae12066dfc94ce943f145aa176c055040c3dd73b0a15e36254d450614"
        ),
        HexVector(
            1,
            "02507f144fa9bf19010bf7c70b235b4c2663cc00e074f929602a5e2c10a78075",
            "7d2a3993d06debc378a90efdac196dd841817b977d67b786804f6d3cd585bab5"
        ),
        HexVector(
            2,
            "1944da61ff18dc2028c3578ac85be904931b83860896598f62468f1cb5471c6a",
            "344c945dbc62c9aaf70feb62472d17775ea5db6ed5494c68b7a9a59761f39614"
        ),
        HexVector(
            3,
            "131c0ca1633ed074986215b264f6e0474f362c52b029effc7b0f75977ee89cc9",
            "5d85c3db87f7e399197a25411592beeeb7e5128a74646a460ecd6deb4994b71e"
        ),
        HexVector(
            4,
            "a7023a0bf9be245d078aed26bcde0465ff0cc0961196a5482a0ff4ff8b401597",
            "1e13611f50529cb408f5776b14a90e7c3dd9160a22211db64ff4b5c0b9953680"
        ),
        HexVector(
            5,
            "50f49313f3a05b2e565c13feedb44daa675cafd42c2b2cf9edbce9c949fbfc3f",
            "175dcb738671509ae2ea66fb85e552394d479afa7fa3affe8791744796b94176"
        ),
        HexVector(
            6,
            "13b58d6d69780089293862cd59a1a8a4ef79bb850e3f3ba41fb22446a7dd1dc4",
            "da4667d37b33bf1225dcf8173c4c349a5d911c5bd2db9c5905ed70c11e809e3b"
        ),
        HexVector(
            7,
            "15d44b4b44ffa006eeceeb508c98a970aaa573d65905687b9e15854dec6d49c6",
            "12757e149f78268f727660dedf9abce22a9691feb20a01b0525f4b47a3cf19db"
        ),
        HexVector(
            8,
            "9aebba11c5428ae8225716369e30a48943be39159a899f804e9963ef78822e18",
            "6c21fe95bb0b85e60ef03a6f58d0b9d06e91f79d0ab998450b8810c73ca935b4"
        ),
        HexVector(
            9,
            "70f9b83e463fb441e7a4c43275125cd5b19d8e2e4a5d179a39f5db10bbce745a",
            "199104563d308cf8d4c6b27bbb759ded232f5bdb7c367dd632a9677320dfe416"
        ),
    ]

    static let byLength: [HexVector] = [
        HexVector(16, "a529216624ef9161e4cf117272aafff2"),
        HexVector(17, "068bd6940b80c6cc2530a68c31d9f4e323"),
        HexVector(24, "94d678717625e011995c7355f2092267dee47bf0722dd380"),
        HexVector(32, "154b291f11196737f8b7f491e4ca11764e0227d34f94295408a869f007aa8618"),
        HexVector(
            33,
            "e9dd395570e09ebb523ffc6ba098a38b17bc4944f14bd3725bdd7edbd8bcff54",
            "fb"
        ),
        HexVector(
            48,
            "30b720220015fa60daa69c83f9754d772b1b2dd12ab6baaa2f4edab458d4d251",
            "c1cddb8c4a554f3eb13969316b890fbd"
        ),
        HexVector(
            63,
            "02f9cbdb10759314515b01379c474ad74a1b575137bd3949776dbcfc3e18060c",
            "b13ee1f6dcf86035768fc7be63e01de321cacbfade209900dd94273fd8e176"
        ),
        HexVector(
            64,
            "06ae14308eeeda62a00cb6d5edf18d1707029515db98f472bbf0617419301b1d",
            "4f4f2ab65849446be46f87e1d31c6c74283897b9976f70d8a16253ac927e0d9f"
        ),
    ]

    static var masterKey: SecretBytes { TestBytes.secret(TestBytes.sequence(32)) }

    @Test(arguments: firstTen)
    func libsodiumVectorBySubkeyID(_ vector: HexVector) throws {
        let subkey = try KeyDerivation.deriveSubkey(
            id: UInt64(vector.parameter), context: Self.context, from: Self.masterKey, byteCount: 64)
        #expect(subkey.count == 64)
        #expect(TestBytes.hex(of: TestBytes.reveal(subkey)) == TestBytes.hex(of: vector.expected))
    }

    @Test(arguments: byLength)
    func libsodiumVectorByLength(_ vector: HexVector) throws {
        let length = vector.parameter
        let subkey = try KeyDerivation.deriveSubkey(
            id: UInt64(length), context: Self.context, from: Self.masterKey, byteCount: length)
        #expect(TestBytes.reveal(subkey) == vector.expected)
    }

    @Test func defaultLengthIs32Bytes() throws {
        // kdf.exp, second loop, length 32 (subkey id 32).
        let expected = try #require(Self.byLength.first(where: { $0.parameter == 32 })).expected
        let subkey = try KeyDerivation.deriveSubkey(id: 32, context: Self.context, from: Self.masterKey)
        #expect(subkey.count == 32)
        #expect(TestBytes.reveal(subkey) == expected)
    }

    @Test func subkeysAreSeparatedByIDAndContext() throws {
        let root = SecretBytes(randomCount: KeyDerivation.rootKeyByteCount)
        let a = try KeyDerivation.deriveSubkey(id: 1, context: "CARDFPRT", from: root)
        let again = try KeyDerivation.deriveSubkey(id: 1, context: "CARDFPRT", from: root)
        let otherID = try KeyDerivation.deriveSubkey(id: 2, context: "CARDFPRT", from: root)
        let otherContext = try KeyDerivation.deriveSubkey(id: 1, context: "CARDDATA", from: root)
        #expect(a == again)
        #expect(a != otherID)
        #expect(a != otherContext)
        let maxID = try KeyDerivation.deriveSubkey(id: .max, context: "CARDFPRT", from: root)
        #expect(maxID != a)
    }

    @Test(arguments: ["KDF tes", "KDF tests", "", "kdf", "KDF t\u{e9}st"])
    func contextMustBeEightBytes(_ context: String) {
        #expect(throws: VaultCryptoError.invalidParameter) {
            try KeyDerivation.deriveSubkey(id: 0, context: context, from: Self.masterKey)
        }
    }

    @Test(arguments: [0, 1, 15, 65, 128, -1])
    func subkeyLengthMustBe16To64(_ byteCount: Int) {
        #expect(throws: VaultCryptoError.invalidParameter) {
            try KeyDerivation.deriveSubkey(id: 0, context: Self.context, from: Self.masterKey, byteCount: byteCount)
        }
    }

    @Test(arguments: [1, 16, 31, 33, 64])
    func rootKeyMustBe32Bytes(_ rootLength: Int) {
        let root = SecretBytes(randomCount: rootLength)
        #expect(throws: VaultCryptoError.invalidKeySize) {
            try KeyDerivation.deriveSubkey(id: 0, context: Self.context, from: root)
        }
    }

    @Test func contextIsCheckedBeforeLengthAndRoot() {
        // A bad context is reported as invalidParameter even when the root key is also bad.
        let shortRoot = SecretBytes(randomCount: 16)
        #expect(throws: VaultCryptoError.invalidParameter) {
            try KeyDerivation.deriveSubkey(id: 0, context: "7 chars", from: shortRoot, byteCount: 8)
        }
    }
}
