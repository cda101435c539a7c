import Testing

@testable import VaultCrypto

/// Keyed BLAKE2b (`crypto_generichash` with a key).
///
/// Vectors:
/// - `referenceKAT`: the keyed BLAKE2b-512 known-answer tests of the BLAKE2 reference
///   implementation (`testvectors/blake2b-kat.txt` in github.com/BLAKE2/BLAKE2, also
///   https://blake2.net/blake2b-test.txt): key = 0x00...0x3f (64 bytes), input =
///   0x00, 0x01, ... of the given length, 64-byte output. Cross-checked with Python's
///   independent `hashlib.blake2b(data, key=key, digest_size=64)`.
/// - `libsodiumGenerichash`: libsodium `test/default/generichash.c` / `generichash.exp`
///   (jedisct1/libsodium), line `i` = `crypto_generichash(out, 1 + i, in = 0x00...(i-1), i,
///   k = 0x00...i, 1 + i)`. Only the lines whose key and output lengths fall in the 16...64
///   range KeyedHash accepts (i = 15...63) are used. Every line was also recomputed with
///   `hashlib.blake2b` before being copied here.
@Suite struct KeyedHashTests {
    static let referenceKAT: [HexVector] = [
        HexVector(
            0,
            "10ebb67700b1868efb4417987acf4690ae9d972fb7a590c2f02871799aaa4786",
            "b5e996e8f0f4eb981fc214b005f42d2ff4233499391653df7aefcbc13fc51568"
        ),
        HexVector(
            1,
            "961f6dd1e4dd30f63901690c512e78e4b45e4742ed197c3c5e45c549fd25f2e4",
            "187b0bc9fe30492b16b0d0bc4ef9b0f34c7003fac09a5ef1532e69430234cebd"
        ),
        HexVector(
            2,
            "da2cfbe2d8409a0f38026113884f84b50156371ae304c4430173d08a99d9fb1b",
            "983164a3770706d537f49e0c916d9f32b95cc37a95b99d857436f0232c88a965"
        ),
        HexVector(
            3,
            "33d0825dddf7ada99b0e7e307104ad07ca9cfd9692214f1561356315e784f3e5",
            "a17e364ae9dbb14cb2036df932b77f4b292761365fb328de7afdc6d8998f5fc1"
        ),
        HexVector(
            64,
            "65676d800617972fbd87e4b9514e1c67402b7a331096d3bfac22f1abb95374ab",
            "c942f16e9ab0ead33b87c91968a6e509e119ff07787b3ef483e1dcdccf6e3022"
        ),
        HexVector(
            128,
            "72065ee4dd91c2d8509fa1fc28a37c7fc9fa7d5b3f8ad3d0d7a25626b57b1b44",
            "788d4caf806290425f9890a3a2a35a905ab4b37acfd0da6e4517b2525c9651e4"
        ),
        HexVector(
            255,
            "142709d62e28fcccd0af97fad0f8465b971e82201dc51070faa0372aa43e9248",
            "4be1c1e73ba10906d5d1853db6a4106e0a7bf9800d373d6dee2d46d62ef2a461"
        ),
    ]

    static let libsodiumGenerichash: [HexVector] = [
        HexVector(15, "0c7c9c3922d41a7b2b3b20f92685d560"),
        HexVector(16, "8508c01d19709bdd881866aa1f8c63ca06"),
        HexVector(17, "f6b2dddfbece6d7d52e114c7e5a97772e18d"),
        HexVector(18, "d36b5af9591d0cd3747254e26bc6e1de5b6081"),
        HexVector(19, "f7f7ce69149418d7ec33327bd86e14bcca4b8ed7"),
        HexVector(20, "2c9aba9a56de21165753c4f3cee9310a9c8fe546b9"),
        HexVector(21, "ee5e08cee5fbbcb51900341bb30db6695920faecda6a"),
        HexVector(22, "fe9ffb56dc5716b91bc7d77ce7b05e7cc39c31683bec91"),
        HexVector(23, "c500ae0f5bff0f1106ce104ae9c291add7207e0d8ebcb1ed"),
        HexVector(24, "68e23d12000b387158afd6458d3bcef9c26936ca68b5c0f3d6"),
        HexVector(25, "220efa2c09f67dbb02aa623bbc0cb92107a30f53b633e78d4b44"),
        HexVector(26, "54df984b47e4bcd489d9c045c488743fac91c9b3e0cbcc37495fac"),
        HexVector(27, "b4852cf66c6ce164c002bbb62ded0faeb4a39c39fdffb372ff14dd31"),
        HexVector(28, "d79cafb5565e7775616e1c9b09100d61fb71efaf25affcf2d480d2c980"),
        HexVector(29, "ae557883145e374adef583ba0550429d5cdd86b254c33bf52d02e070efda"),
        HexVector(30, "9f53d28c0df7b327c2eb4c8a12c742829225b7f30fda7baf64135098fdb01b"),
        HexVector(31, "a9f51bb7f6a3e9cdb96ce652c07d177962a348a9cced1b92f948187e59b44463"),
        HexVector(
            32,
            "f2960cf5fd57fc92f549cd5a2803147964f60e7703e1b8897c088cded74c7bd3",
            "9f"
        ),
        HexVector(
            33,
            "89981acbb690eb03ed2a67510d1d85a1b4f9d496fdfe134550ae14146bb05fd5",
            "fedd"
        ),
        HexVector(
            34,
            "6d8245383fd7c418b46511339e711b9d4a0d1f5fdf6de45fdd3d0664164b7bf8",
            "78a124"
        ),
        HexVector(
            35,
            "1f0b6b083d524e0741710ddef499ce88f51083bb3ad80a1815cc57acf006436e",
            "9b6ad72b"
        ),
        HexVector(
            36,
            "fc35bfe34c915020bb8b44fa0a19933774eaaf61919780fd55564e085bc31646",
            "dfc1d426e9"
        ),
        HexVector(
            37,
            "117d58f1f8cb2c036102686035975be90550795e5a0e3469a8f7a2cba9bc8896",
            "1852b18c8ae3"
        ),
        HexVector(
            38,
            "c679c950818729c799bb7f39cef2d89fa80a147817f379a073ef1ccafea5d369",
            "815c70373bf5be"
        ),
        HexVector(
            39,
            "d487ad2143024ee8c645a066c035b74abe3a11f1c9fcd738b154b8ca37134d74",
            "fb78c40d1a2274cf"
        ),
        HexVector(
            40,
            "2d3ee00828b0ccea6812b40f214fab6d4f23f7e74ae228115bcb208ced2d5e1c",
            "b9cdff41de912af7a8"
        ),
        HexVector(
            41,
            "a697b26d4c4475e312288b98ae2ec4954d3c74c8e144c0ab518616ff9f52918a",
            "946fd765af75e761178c"
        ),
        HexVector(
            42,
            "f647bcba2a711f431d6d453aa7d75dcf5bb9ab6f8b83f89117230f633e7580f2",
            "7c71c4f4c211cadd04f587"
        ),
        HexVector(
            43,
            "1fc1d6a4db753e2f4fd1456b2b709dd70ad58547eeda9d5a55762b5cd4097a7a",
            "1bd73cc633ec27168ee65631"
        ),
        HexVector(
            44,
            "1cfe0f63ab155379b4a1b5bf694a33635097b8e4b6dbd3b983d62454d36d7bf4",
            "550bece301abdd27b2dd76ca9f"
        ),
        HexVector(
            45,
            "73dee8a0a558e7b6f6eefe411280e253b05ef006d499849fea5d6a95f9141ee1",
            "60322fff3a3f70e10c84025e02ce"
        ),
        HexVector(
            46,
            "edf9e706f4acae4f4bed72404f14458ba075d2b9d9a4a1ed46d1f1c5e23113a7",
            "4cce9f7735432a922a3d8097f22c7a"
        ),
        HexVector(
            47,
            "95d5cd54c6722ac4335fa0ab38d388c9fd0baea48a9078605e400534ef38f13a",
            "bb1d770da84b90b0256e1c1b64f54ba9"
        ),
        HexVector(
            48,
            "fe6b85ee8b5eb7da035264ed46e6dcd948571018d1f6976de4102fcb4bb5f142",
            "2e7df1b5aaa5b6b56c5961966db29ead6e"
        ),
        HexVector(
            49,
            "499ab83c01e4bf74ea5036392f9f810eae8a066fff49e316e4288baccb2001ef",
            "a24f64cef7bfae70c90f139b198e53ad87f1"
        ),
        HexVector(
            50,
            "eac6c9d97264241a8adba22ee925438ed9787a547018608a10676a7594bc51c6",
            "0294bd9159fbcada9022b44880a37c5b07c1b4"
        ),
        HexVector(
            51,
            "0771e3ae24bbfe424800d4bae776fef3da1607990019e7c4b30bc8140061ebf0",
            "b64aad7b018a878d579caa67154b98a04402735e"
        ),
        HexVector(
            52,
            "d569e5f5fe197387451441911a2be2effa606dad39820af44cea056bd9d1499d",
            "de41fa1c6c3a0459d5866c944bec2ac83328953726"
        ),
        HexVector(
            53,
            "68e523ded865c4d8318d61c312189a59597bbc3995e312e85137611af761a5f7",
            "3508ac79e359edf729d4508830fc642b432f09185914"
        ),
        HexVector(
            54,
            "601af664ae596166707244adbb4f704593b355c6a659c844d853c6647fb265cd",
            "bcea26ed43657251dec37f2d6453fa0ace55f22d303cb0"
        ),
        HexVector(
            55,
            "703d8e552236b2090143444545f0a61a809d8ef9843bcf6883f61671fb31c8d6",
            "ac9fd373e7f9f79a0c72fa6a37dc655ba1fb01a5f41e36d1"
        ),
        HexVector(
            56,
            "03896f594afd1bf97acb862106eb05a1d8b54ec08d184812a79f4dc7b287a748",
            "6e60927b6c23e5f51fcbc94798648b28fd13438300567bec95"
        ),
        HexVector(
            57,
            "cc66a891768e95a2717b040c111996f14942f10f2475c33aa5f1c97476e6f838",
            "6733d6b21c16102d01ff1f715475f01099e1f19aa763238a38a9"
        ),
        HexVector(
            58,
            "007aac8eae29e5bf2be1b54857f5fe80c324424a3273b46e55482fbc4ae1033d",
            "f4a97016b60c81a5344abd6366f56d8cee2c2e94619418293990de"
        ),
        HexVector(
            59,
            "50c81e92605a6111ea4c7c602acfb3945d4c2631c8c08fa4b594134577f5c2ff",
            "cca90d48604162cfdb2a0bb40416ff9134a275461b829ff1b875f995"
        ),
        HexVector(
            60,
            "661b7a1c70170aa7559aa82639fa65c1bdcfb5e336cb23b40a9edf5b4f6eeca1",
            "a176a9844da705cafb990dd94b9dc6194eb6b2de3eca9dbd255bb267a1"
        ),
        HexVector(
            61,
            "9ff11c233aaf5e0242b0dbe6e110a42e58b86141ad0ef130fd2bb89570001978",
            "2de66d435bf0a8d6f5eda5d7d1105e7a6f3ef17a9da8f9c16fc21075431a"
        ),
        HexVector(
            62,
            "bdd3d0fafe8ba2b29d1ac0b79aa46e249cc9d3a82d0f772d690637bbdd353722",
            "356658d00436ff5dd5239ab747979329345eb8c7ed11b7331456ae87350fcf"
        ),
        HexVector(
            63,
            "bd965bf31e87d70327536f2a341cebc4768eca275fa05ef98f7f1b71a0351298",
            "de006fba73fe6733ed01d75801b4a928e54231b38e38c562b2e33ea1284992fa"
        ),
    ]

    @Test(arguments: referenceKAT)
    func blake2bReferenceKeyedKAT(_ vector: HexVector) {
        let key = TestBytes.secret(TestBytes.sequence(64))
        let input = TestBytes.sequence(vector.parameter)
        let digest = KeyedHash.hash(input, key: key, outputByteCount: 64)
        #expect(TestBytes.hex(of: digest) == TestBytes.hex(of: vector.expected))
    }

    @Test(arguments: libsodiumGenerichash)
    func libsodiumGenerichashVector(_ vector: HexVector) {
        let i = vector.parameter
        let key = TestBytes.secret(TestBytes.sequence(i + 1))
        let input = TestBytes.sequence(i)
        let digest = KeyedHash.hash(input, key: key, outputByteCount: i + 1)
        #expect(digest == vector.expected)
    }

    @Test func intoBufferAndViewsAgree() throws {
        let key = TestBytes.secret(TestBytes.sequence(64))
        let input = TestBytes.sequence(255)
        let expected = try #require(Self.referenceKAT.first(where: { $0.parameter == 255 })).expected
        var output = [UInt8](repeating: 0, count: 64)
        input.withUnsafeBytes { message in
            output.withUnsafeMutableBytes { KeyedHash.hash(message, key: key, into: $0) }
        }
        #expect(output == expected)
        // ArraySlice and raw buffer views hash the same bytes as the array.
        let padded = [0xff] + input + [0xff]
        #expect(KeyedHash.hash(padded[1..<256], key: key, outputByteCount: 64) == expected)
        #expect(input.withUnsafeBytes { KeyedHash.hash($0, key: key, outputByteCount: 64) } == expected)
    }

    @Test func defaultOutputIs32BytesAndDependsOnKeyAndMessage() {
        let key = SecretBytes(randomCount: KeyedHash.keyByteCount)
        let otherKey = SecretBytes(randomCount: KeyedHash.keyByteCount)
        let message: [UInt8] = Array("4111111111111111".utf8)
        let digest = KeyedHash.hash(message, key: key)
        #expect(digest.count == 32)
        #expect(KeyedHash.hash(message, key: key) == digest)
        #expect(KeyedHash.hash(message, key: otherKey) != digest)
        #expect(KeyedHash.hash(Array("4111111111111112".utf8), key: key) != digest)
        // The output length is part of the BLAKE2b parameter block, so a shorter output is
        // not a prefix of a longer one.
        #expect(Array(KeyedHash.hash(message, key: key, outputByteCount: 64).prefix(32)) != digest)
    }

    @Test func emptyMessageMatchesKAT() throws {
        let key = TestBytes.secret(TestBytes.sequence(64))
        let expected = try #require(Self.referenceKAT.first(where: { $0.parameter == 0 })).expected
        #expect(KeyedHash.hash([UInt8](), key: key, outputByteCount: 64) == expected)
        #expect(KeyedHash.hash(UnsafeRawBufferPointer(start: nil, count: 0), key: key, outputByteCount: 64) == expected)
    }
}
