import Audit
import Foundation
import GRDB
import Testing
import VaultCrypto
import VaultTestSupport

@testable import TokenVault

/// Tampering with the audit log directly in `vault.db` and in `audit.head`, as someone with write
/// access to the data folder but without the master key would: `verify` must say the log is not
/// intact and name the first bad record (DESIGN §6, PCI DSS 10.3.2, 10.3.4).
@Suite("Audit tampering", .timeLimit(.minutes(10)))
struct AuditTamperTests {
    typealias History = AuditHistory

    /// Asserts that `verify` fails at `firstBad`, with the records before it counted as good.
    static func expectBroken(
        _ vault: Vault, at firstBad: Int64, good: Int64? = nil, reasonContains words: [String] = [],
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let verification = try await vault.audit.verify()
        #expect(!verification.ok, "\(verification)", sourceLocation: sourceLocation)
        #expect(verification.firstBadRecord == firstBad, "\(verification)", sourceLocation: sourceLocation)
        #expect(verification.records == (good ?? firstBad - 1), "\(verification)", sourceLocation: sourceLocation)
        let reason = verification.reason ?? ""
        #expect(!reason.isEmpty, sourceLocation: sourceLocation)
        for word in words {
            #expect(reason.contains(word), "reason: \(reason)", sourceLocation: sourceLocation)
        }
    }

    static func expectIntact(
        _ vault: Vault, records: Int64, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let verification = try await vault.audit.verify()
        #expect(verification.ok, "\(verification)", sourceLocation: sourceLocation)
        #expect(verification.records == records, sourceLocation: sourceLocation)
        #expect(verification.firstBadRecord == nil && verification.reason == nil, sourceLocation: sourceLocation)
    }

    // MARK: - The intact log and its two heads

    @Test("the history verifies, and audit_head and audit.head both seal its last record")
    func intactHistory() async throws {
        try await AuditTamper.withHistory { vault, _ in
            try await Self.expectIntact(vault, records: History.count)
            let records = try await vault.audit.records()
            #expect(records[Int(History.batch) - 1].event.objects.count == 2)
            #expect(records[Int(History.withoutPurpose) - 1].event.purpose == nil)
            #expect(records[Int(History.withPurpose) - 1].event.purpose == "settlement")
            #expect(records[Int(History.denied) - 1].event.outcome == .denied)

            let last = try AuditTamper.mac(vault, of: History.count)
            let expected = StoredHead(
                sequence: History.count, mac: last,
                headMAC: AuditTamper.headMAC(vault, sequence: History.count, mac: last))
            #expect(try AuditTamper.databaseHead(vault) == expected)
            let file = try AuditTamper.headFileBytes(vault)
            #expect(file.count == 76)
            #expect(AuditTamper.parseHeadFile(file) == expected)
            #expect(try Bytes.mode(of: AuditTamper.headFilePath(vault)) == 0o600)
            // The head MAC is bound to its sequence: the same MAC under another sequence differs.
            #expect(AuditTamper.headMAC(vault, sequence: History.count - 1, mac: last) != expected.headMAC)
        }
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    static func bytes(hex: String) -> [UInt8] {
        var bytes = [UInt8]()
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    @Test("the record MAC and head MAC known-answer vectors of docs/CRYPTO.md §17")
    func knownAnswerVectors() throws {
        let key = Self.bytes(hex: "e89bd417cca881ec18e32e1ee5eda83d9f2dd5529f46ad34d3c33ebe3da1c47a")
        let chain = AuditChain(key: key.withUnsafeBytes { SecretBytes(copying: $0) })
        let first = AuditEvent(
            actor: "admin:cli", type: "keys.init", time: Date(timeIntervalSince1970: 1_767_225_600), outcome: .success,
            origin: "cli", objects: ["root_key", "data_key:1"])
        #expect(
            Self.hex(AuditChain.canonicalBytes(sequence: 1, event: first))
                == "00000000000000010000019b76daa8000000000961646d696e3a636c69000000096b6579732e696e"
                + "6974000000077375636365737300000003636c69000000000000000200000008726f6f745f6b6579"
                + "0000000a646174615f6b65793a31ffffffffffffffffffffffff")
        let mac1 = chain.mac(sequence: 1, event: first, previous: AuditChain.genesis)
        #expect(Self.hex(mac1) == "37041efb5a40bad8b38923a6ad94d1e41dca17897b211dadf722a705247d6403")
        let second = AuditEvent(
            actor: "k8x2p0q1r7s3t9u4", type: "detokenize", time: Date(timeIntervalSince1970: 1_767_225_600.123),
            outcome: .success, origin: "10.0.0.7", objects: ["tok_AAECAwQFBgcICQoLDA0ODw"], purpose: "settlement",
            reference: "batch-2026-01-01")
        #expect(AuditChain.milliseconds(second.time) == 1_767_225_600_123)
        let mac2 = chain.mac(sequence: 2, event: second, previous: mac1)
        #expect(Self.hex(mac2) == "13888b2eb07ad2f374d4608d16f8fff9e44d0d1be99c87006f9f598b1cfddef9")

        let head2 = chain.headMAC(sequence: 2, mac: mac2)
        #expect(Self.hex(head2) == "2344cbe710c673f6c8f7e07e85bc5072a40d676e4e1258ae374aa096aedc1321")
        #expect(
            Self.hex(AuditTamper.headFileBytes(StoredHead(sequence: 2, mac: mac2, headMAC: head2)))
                == "56414831" + "0000000000000002" + Self.hex(mac2) + Self.hex(head2))
        #expect(
            Self.hex(chain.headMAC(sequence: 1, mac: mac1))
                == "a8157a116cbc44c63a7c7a8160ff268e0fc7f46ff72dcee905cd4e8d0ca7f62f")
    }

    // MARK: - Edited records

    /// One edit of one stored field, made with SQL; `?` is the record's sequence.
    struct Edit: Sendable, CustomTestStringConvertible {
        var name: String
        var sequence: Int64
        var sql: String
        /// Words the reason must contain.
        var reason: [String] = []

        var testDescription: String { "\(name) (record \(sequence))" }
    }

    static let edits: [Edit] = [
        Edit(name: "actor", sequence: 7, sql: "UPDATE audit_log SET actor = 'admin:cli' WHERE sequence = ?"),
        Edit(
            name: "actor of the first record", sequence: 1, sql: "UPDATE audit_log SET actor = 'x' WHERE sequence = ?"),
        Edit(name: "type", sequence: 4, sql: "UPDATE audit_log SET type = 'keys.status' WHERE sequence = ?"),
        Edit(name: "origin", sequence: 7, sql: "UPDATE audit_log SET origin = '127.0.0.1' WHERE sequence = ?"),
        Edit(
            name: "objects replaced", sequence: History.withPurpose,
            sql: #"UPDATE audit_log SET objects = '["tok_someone_else"]' WHERE sequence = ?"#),
        Edit(
            name: "one token dropped from a batch", sequence: History.batch,
            sql: "UPDATE audit_log SET objects = json_remove(objects, '$[1]') WHERE sequence = ?"),
        Edit(
            name: "objects emptied", sequence: History.batch,
            sql: "UPDATE audit_log SET objects = '[]' WHERE sequence = ?"),
        Edit(
            name: "objects not a JSON array", sequence: History.batch,
            sql: "UPDATE audit_log SET objects = 'tok_x' WHERE sequence = ?", reason: ["record altered"]),
        Edit(
            name: "objects re-encoded (same strings, other JSON text)", sequence: History.batch,
            sql: "UPDATE audit_log SET objects = replace(objects, '[', '[ ') WHERE sequence = ?",
            reason: ["record altered"]),
        Edit(
            name: "purpose changed", sequence: History.withPurpose,
            sql: "UPDATE audit_log SET purpose = 'cardholder_reveal' WHERE sequence = ?"),
        Edit(
            name: "purpose removed", sequence: History.withPurpose,
            sql: "UPDATE audit_log SET purpose = NULL WHERE sequence = ?"),
        Edit(
            name: "purpose added", sequence: History.withoutPurpose,
            sql: "UPDATE audit_log SET purpose = 'settlement' WHERE sequence = ?"),
        Edit(
            name: "absent purpose made empty", sequence: History.withoutPurpose,
            sql: "UPDATE audit_log SET purpose = '' WHERE sequence = ?"),
        Edit(name: "reference", sequence: 9, sql: "UPDATE audit_log SET reference = 'ref-0' WHERE sequence = ?"),
        Edit(name: "detail", sequence: 3, sql: "UPDATE audit_log SET detail = 'scopes=admin' WHERE sequence = ?"),
        Edit(
            name: "detail of the last record", sequence: History.count,
            sql: "UPDATE audit_log SET detail = 'records=1' WHERE sequence = ?"),
        Edit(
            name: "time_ms, by 1 ms", sequence: 15, sql: "UPDATE audit_log SET time_ms = time_ms - 1 WHERE sequence = ?"
        ),
        Edit(
            name: "time_ms, a day earlier", sequence: 15,
            sql: "UPDATE audit_log SET time_ms = time_ms - 86400000 WHERE sequence = ?"),
        Edit(
            name: "outcome to a value the log never writes", sequence: History.denied,
            sql: "UPDATE audit_log SET outcome = 'maybe' WHERE sequence = ?", reason: ["record altered"]),
        Edit(
            name: "outcome denied → success", sequence: History.denied,
            sql: "UPDATE audit_log SET outcome = 'success' WHERE sequence = ?", reason: ["MAC mismatch"]),
        Edit(name: "mac", sequence: 11, sql: "UPDATE audit_log SET mac = randomblob(32) WHERE sequence = ?"),
        Edit(
            name: "mac truncated", sequence: 11, sql: "UPDATE audit_log SET mac = substr(mac, 1, 31) WHERE sequence = ?"
        ),
        Edit(
            name: "time_ms stored as text with a suffix", sequence: 15,
            sql: "UPDATE audit_log SET time_ms = CAST(time_ms AS TEXT) || 'x' WHERE sequence = ?",
            reason: ["record altered"]),
        Edit(
            name: "actor stored as a blob of the same bytes", sequence: 7,
            sql: "UPDATE audit_log SET actor = CAST(actor AS BLOB) WHERE sequence = ?", reason: ["record altered"]),
    ]

    @Test("an edited field names its record", arguments: edits)
    func editedField(_ edit: Edit) async throws {
        try await AuditTamper.withHistory { vault, _ in
            try AuditTamper.execute(vault, edit.sql, [edit.sequence])
            try await Self.expectBroken(vault, at: edit.sequence, reasonContains: edit.reason)
        }
    }

    // MARK: - Deleted, inserted, reordered records

    @Test("a deleted record is named, first, middle or next to last")
    func deletedRecord() async throws {
        for sequence: Int64 in [1, 10, History.count - 1] {
            try await AuditTamper.withHistory { vault, _ in
                try AuditTamper.execute(vault, "DELETE FROM audit_log WHERE sequence = ?", [sequence])
                try await Self.expectBroken(vault, at: sequence, reasonContains: ["sequence gap"])
            }
        }
    }

    @Test("a deleted record with the later sequences closed up is named (its successor's MAC breaks)")
    func deletedAndRenumbered() async throws {
        try await AuditTamper.withHistory { vault, _ in
            try AuditTamper.execute(vault, "DELETE FROM audit_log WHERE sequence = 10")
            try AuditTamper.shiftSequences(vault, from: 11, by: -1)
            try await Self.expectBroken(vault, at: 10, reasonContains: ["MAC mismatch"])
        }
    }

    @Test("an inserted record (later sequences shifted up) is named")
    func insertedRecord() async throws {
        try await AuditTamper.withHistory { vault, _ in
            try AuditTamper.shiftSequences(vault, from: 8, by: 1)
            // A made-up detokenize with a made-up MAC, and the head moved to match the count.
            try AuditTamper.execute(
                vault,
                """
                INSERT INTO audit_log (sequence, time_ms, actor, type, outcome, origin, objects, purpose,
                    reference, mac)
                SELECT 8, time_ms + 1, actor, type, outcome, origin, '["tok_forged"]', purpose, reference,
                    randomblob(32)
                FROM audit_log WHERE sequence = 7
                """)
            try AuditTamper.execute(vault, "UPDATE audit_head SET sequence = sequence + 1")
            try await Self.expectBroken(vault, at: 8, reasonContains: ["MAC mismatch"])
        }
    }

    @Test("a genuine record replayed at another position is named")
    func replayedRecord() async throws {
        try await AuditTamper.withHistory { vault, _ in
            // Record 9, MAC and all, copied to position 8: its MAC commits to position 9.
            try AuditTamper.shiftSequences(vault, from: 8, by: 1)
            try AuditTamper.execute(
                vault,
                """
                INSERT INTO audit_log (sequence, time_ms, actor, type, outcome, origin, objects, purpose, reference,
                    detail, mac)
                SELECT 8, time_ms, actor, type, outcome, origin, objects, purpose, reference, detail, mac
                FROM audit_log WHERE sequence = 10
                """)
            try await Self.expectBroken(vault, at: 8, reasonContains: ["MAC mismatch"])
        }
    }

    @Test("a record appended after the last one is named, even with the head moved")
    func appendedRecord() async throws {
        try await AuditTamper.withHistory { vault, _ in
            try AuditTamper.execute(
                vault,
                """
                INSERT INTO audit_log (sequence, time_ms, actor, type, outcome, origin, objects, mac)
                SELECT sequence + 1, time_ms, actor, type, outcome, origin, objects, mac
                FROM audit_log WHERE sequence = ?
                """, [History.count])
            try AuditTamper.execute(vault, "UPDATE audit_head SET sequence = sequence + 1")
            try await Self.expectBroken(vault, at: History.count + 1)
        }
    }

    @Test("two swapped records are named by the earlier position")
    func swappedRecords() async throws {
        for (first, second): (Int64, Int64) in [(5, 12), (History.count - 1, History.count), (1, 2)] {
            try await AuditTamper.withHistory { vault, _ in
                try AuditTamper.swapRows(vault, first, second)
                try await Self.expectBroken(vault, at: first, reasonContains: ["MAC mismatch"])
            }
        }
    }

    // MARK: - A cut tail

    @Test("the last 3 records deleted, head untouched: the head names the cut")
    func tailCut() async throws {
        try await AuditTamper.withHistory { vault, _ in
            try AuditTamper.cutTail(vault, after: History.count - 3)
            try await Self.expectBroken(
                vault, at: History.count - 2, reasonContains: ["log ends at \(History.count - 3)", "\(History.count)"])
        }
    }

    @Test("the last 3 records deleted and audit_head rewritten to the new last record: head_mac no longer seals it")
    func tailCutWithHeadRewritten() async throws {
        try await AuditTamper.withHistory { vault, _ in
            let kept = History.count - 3
            let original = try #require(try AuditTamper.databaseHead(vault))
            try AuditTamper.cutTail(vault, after: kept)
            // Sequence and MAC now describe record 17 exactly; head_mac still seals record 20.
            var rewritten = original
            rewritten.sequence = kept
            rewritten.mac = try AuditTamper.mac(vault, of: kept)
            try AuditTamper.setDatabaseHead(vault, rewritten)
            try await Self.expectBroken(vault, at: kept + 1, good: kept, reasonContains: ["not sealed"])

            // A made-up head_mac does no better.
            rewritten.headMAC = Bytes.random(32)
            try AuditTamper.setDatabaseHead(vault, rewritten)
            try await Self.expectBroken(vault, at: kept + 1, good: kept, reasonContains: ["not sealed"])
        }
    }

    @Test("the last 3 records deleted and audit_head deleted too")
    func tailCutWithHeadDeleted() async throws {
        try await AuditTamper.withHistory { vault, _ in
            try AuditTamper.cutTail(vault, after: History.count - 3)
            try AuditTamper.execute(vault, "DELETE FROM audit_head")
            try await Self.expectBroken(vault, at: History.count - 2, reasonContains: ["missing"])
        }
    }

    @Test("the whole log and its database head deleted: the head file still says 20")
    func everythingDeleted() async throws {
        try await AuditTamper.withHistory { vault, _ in
            try AuditTamper.execute(vault, "DELETE FROM audit_log")
            try AuditTamper.execute(vault, "DELETE FROM audit_head")
            try await Self.expectBroken(vault, at: 1, good: 0, reasonContains: ["head file", "records cut"])
        }
    }

    @Test("audit_head edited alone (sequence, mac or head_mac) is detected")
    func databaseHeadEdited() async throws {
        try await AuditTamper.withHistory { vault, _ in
            let original = try #require(try AuditTamper.databaseHead(vault))
            for column in ["sequence = sequence - 1", "mac = randomblob(32)", "head_mac = randomblob(32)"] {
                try AuditTamper.execute(vault, "UPDATE audit_head SET \(column)")
                try await Self.expectBroken(vault, at: History.count + 1, good: History.count)
                try AuditTamper.setDatabaseHead(vault, original)
                try await Self.expectIntact(vault, records: History.count)
            }
        }
    }

    // MARK: - The head file

    @Test("audit.head deleted: not ok, and the reason names the head file")
    func headFileDeleted() async throws {
        try await AuditTamper.withHistory { vault, _ in
            let path = try AuditTamper.headFilePath(vault)
            try FileManager.default.removeItem(atPath: path)
            try await Self.expectBroken(
                vault, at: History.count + 1, good: History.count, reasonContains: ["head file", path, "missing"])
            // The next append writes it again.
            try await vault.audit.append(AuditTamper.event(1))
            try await Self.expectIntact(vault, records: History.count + 1)
        }
    }

    /// Byte-level damage to an otherwise genuine head file.
    static let malformedHeadFiles: [(String, @Sendable ([UInt8]) -> [UInt8])] = [
        ("empty", { _ in [] }),
        ("one byte short", { Array($0.dropLast()) }),
        ("one byte extra", { $0 + [0] }),
        ("wrong magic", { Array("VAH2".utf8) + $0.dropFirst(4) }),
        ("text instead of bytes", { _ in Array("sequence=20\n".utf8) }),
    ]

    @Test("a malformed audit.head is reported as such")
    func headFileMalformed() async throws {
        try await AuditTamper.withHistory { vault, _ in
            let genuine = try AuditTamper.headFileBytes(vault)
            for (name, damage) in Self.malformedHeadFiles {
                try AuditTamper.setHeadFile(vault, damage(genuine))
                let verification = try await vault.audit.verify()
                #expect(!verification.ok, "\(name)")
                #expect(verification.firstBadRecord == History.count + 1, "\(name)")
                #expect(verification.reason?.contains("malformed") == true, "\(name): \(verification)")
            }
            try AuditTamper.setHeadFile(vault, genuine)
            try await Self.expectIntact(vault, records: History.count)
        }
    }

    @Test("a well-formed audit.head that the audit key did not seal is refused")
    func headFileForged() async throws {
        try await AuditTamper.withHistory { vault, _ in
            let genuine = try #require(AuditTamper.parseHeadFile(try AuditTamper.headFileBytes(vault)))
            // Each field changed in turn; each breaks the seal.
            var forged = genuine
            forged.headMAC = Bytes.random(32)
            var rewound = genuine
            rewound.sequence = History.count - 3
            rewound.mac = try AuditTamper.mac(vault, of: History.count - 3)
            var flipped = genuine
            flipped.mac[0] ^= 1
            for head in [forged, rewound, flipped] {
                try AuditTamper.setHeadFile(vault, AuditTamper.headFileBytes(head))
                try await Self.expectBroken(
                    vault, at: History.count + 1, good: History.count, reasonContains: ["not sealed"])
            }
        }
    }

    /// The file is written after the database commits, so a crash between the two leaves it behind
    /// the database, and a failed write leaves it behind until the next append. `verify`
    /// therefore accepts a file that lags (by any number of records: one commit may hold many),
    /// as long as it is sealed and the record at its sequence still has the MAC it sealed. Only
    /// a file ahead of the log, or disagreeing with it, counts as tampering.
    @Test("an older copy of audit.head (saved before more appends) is accepted: a lagging file is allowed")
    func headFileLagging() async throws {
        try await AuditTamper.withHistory { vault, _ in
            let older = try AuditTamper.headFileBytes(vault)
            for index in 0..<5 { try await vault.audit.append(AuditTamper.event(index)) }
            #expect(AuditTamper.parseHeadFile(try AuditTamper.headFileBytes(vault))?.sequence == History.count + 5)
            try AuditTamper.setHeadFile(vault, older)
            try await Self.expectIntact(vault, records: History.count + 5)

            // Lagging is no free pass: the records up to the file's sequence are still checked
            // (and a file that disagrees with the record at its sequence is refused, see
            // `tailRewrittenFileNot`).
            try AuditTamper.execute(
                vault, "UPDATE audit_log SET mac = randomblob(32) WHERE sequence = ?", [History.count])
            try await Self.expectBroken(vault, at: History.count)
        }
    }

    @Test("a cut tail with audit_head rewound consistently (with the audit key) is caught by audit.head")
    func databaseRewoundFileNot() async throws {
        try await AuditTamper.withHistory { vault, _ in
            let kept = History.count - 3
            // The database head as it was at record 17: sealed, genuine.
            let earlier = try AuditTamper.sealedHead(vault, sequence: kept)
            try AuditTamper.cutTail(vault, after: kept)
            try AuditTamper.setDatabaseHead(vault, earlier)
            try await Self.expectBroken(
                vault, at: kept + 1, good: kept, reasonContains: ["head file", "records cut"])
        }
    }

    @Test("a tail rewritten with the audit key but without the head file is caught by audit.head")
    func tailRewrittenFileNot() async throws {
        try await AuditTamper.withHistory { vault, _ in
            let kept = History.count - 3
            try AuditTamper.cutTail(vault, after: kept)
            try AuditTamper.setDatabaseHead(vault, try AuditTamper.sealedHead(vault, sequence: kept))
            // Three other records, correctly chained and sealed in the database.
            let forger = AuditTamper.fileLessLog(vault)
            #expect(try await forger.append((0..<3).map { AuditTamper.event($0) }) == [18, 19, 20])
            #expect(try AuditTamper.databaseHead(vault) == (try AuditTamper.sealedHead(vault, sequence: History.count)))
            // The database alone is consistent again; the file still seals the original record 20.
            try await Self.expectBroken(
                vault, at: History.count, good: History.count, reasonContains: ["head file sealed"])
        }
    }

    /// The known limit. Both heads can only be moved to states they really had: each is sealed
    /// with the audit key. But an attacker who saved `audit_head` and `audit.head` at some point
    /// (copies of the database and of the file), and later deletes every record after that point
    /// and puts both saved heads back, leaves a log that is exactly what it was then: every MAC
    /// recomputes and both heads seal its last record. That is NOT detected, by design of what
    /// verify can know: nothing in the data folder remembers that more records ever existed.
    /// Detecting it needs a head kept out of the attacker's reach (another host, a WORM store,
    /// the log shipped to a SIEM as it is written), which the vault does not provide.
    ///
    /// What this proves: replaying one head is not enough (see the tests above); the attacker
    /// needs both saved heads AND must delete the newer records, and if any newer record is left
    /// behind, verify fails. What it does not prove: that records were never cut.
    @Test("documents the limit: an old audit_head + audit.head pair replayed after deleting the newer records passes")
    func replayedHeadPairIsTheKnownLimit() async throws {
        try await AuditTamper.withHistory { vault, _ in
            let savedDatabaseHead = try #require(try AuditTamper.databaseHead(vault))
            let savedFile = try AuditTamper.headFileBytes(vault)
            for index in 0..<5 { try await vault.audit.append(AuditTamper.event(index)) }
            try await Self.expectIntact(vault, records: History.count + 5)

            // Both heads put back, the newer records still there: detected.
            try AuditTamper.setDatabaseHead(vault, savedDatabaseHead)
            try AuditTamper.setHeadFile(vault, savedFile)
            try await Self.expectBroken(
                vault, at: History.count + 6, good: History.count + 5,
                reasonContains: ["log ends at \(History.count + 5)"])

            // Delete them as well: the log is indistinguishable from the log at record 20.
            try AuditTamper.cutTail(vault, after: History.count)
            try await Self.expectIntact(vault, records: History.count)
        }
    }

    // MARK: - Group commit

    @Test("200 concurrent appends get 200 consecutive sequences, and the chain verifies")
    func concurrentAppends() async throws {
        try await AuditTamper.withHistory { vault, _ in
            let audit = vault.audit
            let sequences = try await withThrowingTaskGroup(of: Int64.self) { group in
                for index in 0..<200 {
                    group.addTask { try await audit.append(AuditTamper.event(index)) }
                }
                var sequences = [Int64]()
                for try await sequence in group { sequences.append(sequence) }
                return sequences
            }
            #expect(sequences.count == 200)
            #expect(sequences.sorted() == Array(History.count + 1...History.count + 200))
            try await Self.expectIntact(vault, records: History.count + 200)

            // Each caller got the sequence its own event was stored under.
            let records = try await vault.audit.records(after: History.count, limit: 1000)
            #expect(records.count == 200)
            let detailBySequence = Dictionary(uniqueKeysWithValues: records.map { ($0.sequence, $0.event.detail) })
            #expect(Set(detailBySequence.values.compactMap { $0 }) == Set((0..<200).map { "index=\($0)" }))
            let head = try #require(AuditTamper.parseHeadFile(try AuditTamper.headFileBytes(vault)))
            #expect(head.sequence == History.count + 200)
            #expect(try AuditTamper.databaseHead(vault) == head)
        }
    }

    @Test("each concurrent caller gets back the sequence of its own event")
    func concurrentAppendsReturnTheirOwnSequence() async throws {
        try await withVault { vault, _ in
            let audit = vault.audit
            let pairs = try await withThrowingTaskGroup(of: (Int, [Int64]).self) { group in
                for index in 0..<100 {
                    // Some callers append several events at once.
                    let events = (0...(index % 3)).map { AuditTamper.event(index * 10 + $0) }
                    group.addTask { (index, try await audit.append(events)) }
                }
                var pairs = [(Int, [Int64])]()
                for try await pair in group { pairs.append(pair) }
                return pairs
            }
            let records = try await vault.audit.records(limit: 10_000)
            let detail = Dictionary(uniqueKeysWithValues: records.map { ($0.sequence, $0.event.detail ?? "") })
            for (index, sequences) in pairs {
                #expect(sequences.count == index % 3 + 1)
                // A caller's events are stored together and in its order.
                #expect(sequences == Array(sequences[0]..<sequences[0] + Int64(sequences.count)))
                #expect(sequences.map { detail[$0] } == sequences.indices.map { "index=\(index * 10 + $0)" })
            }
            let verification = try await vault.audit.verify()
            #expect(verification.ok && verification.records == Int64(records.count), "\(verification)")
        }
    }

    /// `verify` reads the log in one snapshot; appends committed meanwhile move the head file on.
    /// It must never mistake such a file for one "ahead" of the log.
    @Test("verify while appends go on never reports a cut")
    func verifyDuringAppends() async throws {
        try await AuditTamper.withHistory { vault, _ in
            let audit = vault.audit
            let appender = Task {
                for index in 0..<400 { try await audit.append(AuditTamper.event(index)) }
            }
            var failures = [String]()
            var rounds = 0
            repeat {
                let verification = try await audit.verify()
                if !verification.ok { failures.append("\(verification)") }
                rounds += 1
                if verification.records >= History.count + 400 { break }
            } while rounds < 10_000
            #expect(rounds > 1)
            try await appender.value
            #expect(failures.isEmpty, "\(failures.count) false alarms in \(rounds) rounds, e.g. \(failures.prefix(2))")
            try await Self.expectIntact(vault, records: History.count + 400)
        }
    }
}
