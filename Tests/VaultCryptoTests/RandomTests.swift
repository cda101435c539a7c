import Testing

@testable import VaultCrypto

@Suite struct SecureRandomTests {
    @Test func bytesHaveRequestedLengthAndDiffer() {
        #expect(SecureRandom.bytes(0).isEmpty)
        #expect(SecureRandom.bytes(1).count == 1)
        var seen = Set<[UInt8]>()
        for _ in 0..<200 {
            let bytes = SecureRandom.bytes(16)
            #expect(bytes.count == 16)
            seen.insert(bytes)
        }
        #expect(seen.count == 200)
    }

    @Test func fillHandlesEmptyAndNonEmptyBuffers() {
        SecureRandom.fill(UnsafeMutableRawBufferPointer(start: nil, count: 0))
        var buffer = [UInt8](repeating: 0, count: 64)
        buffer.withUnsafeMutableBytes { SecureRandom.fill($0) }
        // 64 zero bytes from a CSPRNG has probability 2^-512.
        #expect(buffer != [UInt8](repeating: 0, count: 64))
    }

    @Test func uniformStaysInRangeAndCoversIt() {
        var counts = [Int](repeating: 0, count: 10)
        for _ in 0..<2000 {
            let value = SecureRandom.uniform(10)
            #expect(value < 10)
            if value < 10 { counts[Int(value)] += 1 }
        }
        // Each bucket expects 200; fewer than 100 has negligible probability.
        #expect(counts.allSatisfy { $0 > 100 })
        #expect(SecureRandom.uniform(1) == 0)
    }

    @Test func bytesLookUniform() {
        // 64 KiB: every byte value expected 256 times; a fair source is never below 150.
        var counts = [Int](repeating: 0, count: 256)
        for byte in SecureRandom.bytes(65536) { counts[Int(byte)] += 1 }
        #expect((counts.min() ?? 0) > 150)
        #expect((counts.max() ?? .max) < 380)
    }
}

@Suite struct RandomPoolTests {
    @Test func remainingDecreasesWithEachTake() {
        var pool = RandomPool(byteCount: 1024)
        let initial = pool.remaining
        #expect(initial == 1024)
        pool.take(24) { #expect($0.count == 24) }
        let afterOne = pool.remaining
        #expect(afterOne == 1000)
        pool.take(0) { #expect($0.isEmpty) }
        let afterEmpty = pool.remaining
        #expect(afterEmpty == 1000)
        pool.take(1000) { #expect($0.count == 1000) }
        let afterAll = pool.remaining
        #expect(afterAll == 0)
    }

    @Test func takesNeverRepeat() {
        var pool = RandomPool(byteCount: 16 * 512)
        var chunks = Set<[UInt8]>()
        var previous: [UInt8] = []
        var remaining = pool.remaining
        for _ in 0..<512 {
            let chunk = pool.take(16) { Array($0) }
            #expect(chunk != previous)
            chunks.insert(chunk)
            previous = chunk
            let now = pool.remaining
            #expect(now == remaining - 16)
            remaining = now
        }
        #expect(chunks.count == 512)
        #expect(remaining == 0)
    }

    @Test func takeReturnsTheBodyResult() {
        var pool = RandomPool(byteCount: 8)
        let count = pool.take(8) { $0.count }
        #expect(count == 8)
    }

    @Test func separatePoolsDiffer() {
        var a = RandomPool(byteCount: 32)
        var b = RandomPool(byteCount: 32)
        let fromA = a.take(32) { Array($0) }
        let fromB = b.take(32) { Array($0) }
        #expect(fromA != fromB)
        #expect(fromA != [UInt8](repeating: 0, count: 32))
    }

    @Test func poolOutputIsNotConstant() {
        var pool = RandomPool(byteCount: 4096)
        let bytes = pool.take(4096) { Array($0) }
        #expect(Set(bytes).count > 200)
    }
}
