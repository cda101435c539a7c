import Foundation
import GRDB
import SQLiteSupport
import Testing

@Suite("RawStatement")
struct RawStatementTests {
    /// A pool in a temporary folder with a table `t (id INTEGER PRIMARY KEY, text, number, blob)`.
    static func withTable<R>(_ body: (DatabasePool) async throws -> R) async throws -> R {
        try await withTemporaryFolder { root in
            let pool = try DatabaseFile.openDurablePool(
                directory: root, fileName: "test.db", configuration: Configuration())
            try await pool.write { db in
                try db.execute(sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, text, number, blob)")
            }
            return try await body(pool)
        }
    }

    @Test("values round-trip exactly: text with its length (a NUL and non-ASCII included), integers, blobs, NULLs")
    func roundTrip() async throws {
        try await Self.withTable { pool in
            try await pool.write { db in
                let insert = try RawStatement(db, "INSERT INTO t (text, number, blob) VALUES (?, ?, ?)")
                try insert.bind(1, "a\u{0}b é €")
                try insert.bind(2, Int64.min)
                try insert.bind(3, [0, 1, 0xFF] as [UInt8])
                #expect(try insert.run() == 1)
                #expect(insert.lastInsertRowID == 1)
                try insert.bind(1, nil as String?)
                try insert.bind(2, nil as Int64?)
                try insert.bind(3, [] as [UInt8])
                #expect(try insert.run() == 1)
                #expect(insert.lastInsertRowID == 2)

                let select = try RawStatement(db, "SELECT text, number, blob FROM t ORDER BY id")
                defer { select.reset() }
                #expect(try select.next())
                #expect(select.string(0) == "a\u{0}b é €")
                #expect(select.optionalString(0) == "a\u{0}b é €")
                #expect(select.int64(1) == Int64.min)
                #expect(select.optionalInt64(1) == Int64.min)
                #expect(select.bytes(2) == [0, 1, 0xFF])
                #expect(!select.isNull(2))
                #expect(try select.next())
                #expect(select.isNull(0) && select.optionalString(0) == nil && select.string(0) == "")
                #expect(select.isNull(1) && select.optionalInt64(1) == nil)
                // An empty blob is stored as an empty blob, not NULL; both read as [].
                #expect(!select.isNull(2) && select.bytes(2) == [])
                #expect(try !select.next())
            }
        }
    }

    @Test("run counts the changed rows: 0 when ON CONFLICT DO NOTHING applies")
    func changes() async throws {
        try await Self.withTable { pool in
            try await pool.write { db in
                let insert = try RawStatement(db, "INSERT INTO t (id, number) VALUES (?, ?) ON CONFLICT(id) DO NOTHING")
                for (id, expected) in [(1, 1), (1, 0), (2, 1)] {
                    try insert.bind(1, Int64(id))
                    try insert.bind(2, Int64(id))
                    #expect(try insert.run() == expected)
                }
                let update = try RawStatement(db, "UPDATE t SET number = number + 1 WHERE id <= ?")
                try update.bind(1, 5 as Int64)
                #expect(try update.run() == 2)
            }
        }
    }

    @Test("the statement from the cache starts with no bindings left from its last use")
    func clearsBindings() async throws {
        try await Self.withTable { pool in
            try await pool.write { db in
                let sql = "INSERT INTO t (text, number) VALUES (?, ?)"
                let first = try RawStatement(db, sql)
                try first.bind(1, "secret")
                try first.bind(2, 1 as Int64)
                _ = try first.run()
                let second = try RawStatement(db, sql)
                try second.bind(2, 2 as Int64)
                _ = try second.run()
                let texts = try String?.fetchAll(db, sql: "SELECT text FROM t ORDER BY id")
                #expect(texts == ["secret", nil])
            }
        }
    }

    @Test("a failed step throws a DatabaseError and leaves the statement reset for its next use")
    func failedStep() async throws {
        try await Self.withTable { pool in
            try await pool.write { db in
                try db.execute(sql: "INSERT INTO t (id) VALUES (1)")
                let insert = try RawStatement(db, "INSERT INTO t (id) VALUES (?)")
                try insert.bind(1, 1 as Int64)
                #expect(throws: DatabaseError.self) { try insert.run() }
                try insert.bind(1, 2 as Int64)
                #expect(try insert.run() == 1)
                // A query whose step fails (an integer overflow in `abs`) resets itself too.
                let select = try RawStatement(db, "SELECT abs(?)")
                try select.bind(1, Int64.min)
                #expect(throws: DatabaseError.self) { try select.next() }
                try select.bind(1, -3 as Int64)
                #expect(try select.next())
                #expect(select.int64(0) == 3)
                select.reset()
            }
        }
    }

    @Test("c6ea881: a statement stays valid when a schema change empties GRDB's statement cache under it")
    func survivesSchemaChange() async throws {
        try await Self.withTable { pool in
            try await pool.write { db in
                let insert = try RawStatement(db, "INSERT INTO t (number) VALUES (?)")
                try insert.bind(1, 1 as Int64)
                _ = try insert.run()
                // A caller's code between two uses changes the schema: GRDB drops (and would
                // finalize) its cached statements.
                try db.execute(sql: "CREATE TABLE other (x); CREATE INDEX t_number ON t (number)")
                try insert.bind(1, 2 as Int64)
                #expect(try insert.run() == 1)
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM t") == 2)
            }
        }
    }
}

@Suite("Hex and milliseconds")
struct EncodingTests {
    @Test("hex is lower-case, two digits a byte, from a sequence or from raw bytes")
    func hex() {
        let bytes: [UInt8] = [0x00, 0x0F, 0x10, 0xAB, 0xFF]
        #expect(Hex.encode(bytes) == "000f10abff")
        #expect(Hex.encode(Data(bytes)) == "000f10abff")
        #expect(bytes.withUnsafeBytes { Hex.encode($0) } == "000f10abff")
        #expect(Hex.encode([UInt8]()) == "")
        #expect(Hex.encode(Array(0...255) as [UInt8]) == (0...255).map { String(format: "%02x", $0) }.joined())
    }

    @Test("a date is stored as whole milliseconds rounded down, and read back from them")
    func milliseconds() {
        #expect(Date(timeIntervalSince1970: 1_767_225_600.1239).milliseconds == 1_767_225_600_123)
        #expect(Date(timeIntervalSince1970: -0.0005).milliseconds == -1)
        #expect(Date(milliseconds: 1_767_225_600_123).timeIntervalSince1970 == 1_767_225_600.123)
        #expect(Date(milliseconds: 0) == Date(timeIntervalSince1970: 0))
        #expect(Duration.milliseconds(1500).milliseconds == 1500)
        #expect((Duration.seconds(2) + .microseconds(999)).milliseconds == 2000)
    }
}
