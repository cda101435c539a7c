import Ledger
import Testing

@Suite("Statements")
struct StatementTests {
    @Test("transfers(of:after:limit:) pages through all transfers of an account, oldest first")
    func pagination() async throws {
        try await withLedger { ledger, _ in
            for id in ["bank", "alice", "bob"] { _ = try await ledger.createAccount(id: id, currency: Money.eur) }

            // 23 transfers touch alice (as debit or credit, single and two-phase); others do not.
            var expected = [String]()
            for index in 0..<15 {
                let id = "t\(index)"
                let request: TransferRequest =
                    index.isMultiple(of: 3)
                    ? .make(id, "alice", "bob", Int64(index + 1)) : .make(id, "bank", "alice", Int64(index + 1))
                #expect(try await ledger.submit(request) == .created)
                expected.append(id)
                #expect(try await ledger.submit(.make("other-\(index)", "bank", "bob", 1)) == .created)
                // Failed transfers never show up.
                #expect(try await ledger.submit(.make("bad-\(index)", "alice", "ghost", 1)).code == .accountNotFound)
            }
            for index in 0..<4 {
                #expect(
                    try await ledger.submit(.make("p\(index)", "bank", "alice", 10, .pending(expiresAt: nil)))
                        == .created)
                expected.append("p\(index)")
                let release: TransferRequest =
                    index.isMultiple(of: 2) ? .post("c\(index)", "p\(index)", 5) : .void("v\(index)", "p\(index)")
                #expect(try await ledger.submit(release) == .created)
                expected.append(release.id)
            }
            #expect(expected.count == 23)

            var seen = [String]()
            var sequences = [Int64]()
            var cursor: Int64 = 0
            var pages = 0
            while true {
                let page = try await ledger.transfers(of: "alice", after: cursor, limit: 5)
                if page.isEmpty { break }
                pages += 1
                #expect(page.count <= 5)
                for entry in page {
                    #expect(entry.transfer.debitAccountID == "alice" || entry.transfer.creditAccountID == "alice")
                    seen.append(entry.transfer.id)
                    sequences.append(entry.sequence)
                }
                cursor = page.last!.sequence
                try #require(pages < 100, "pagination does not end")
            }
            #expect(pages == 5)
            #expect(seen == expected)
            #expect(sequences == sequences.sorted())
            #expect(Set(sequences).count == sequences.count)

            // One big page gives the same, and the end is empty.
            let all = try await ledger.transfers(of: "alice", after: 0, limit: 1_000)
            #expect(all.map(\.transfer.id) == expected)
            #expect(try await ledger.transfers(of: "alice", after: all.last!.sequence, limit: 10).isEmpty)
            #expect(try await ledger.transfers(of: "ghost").isEmpty)
            // Bob's statement holds his own, interleaved with alice's where shared.
            let bob = try await ledger.transfers(of: "bob", after: 0, limit: 1_000).map(\.transfer.id)
            #expect(bob.count == 5 + 15)
            #expect(bob.first == "t0")
        }
    }
}
