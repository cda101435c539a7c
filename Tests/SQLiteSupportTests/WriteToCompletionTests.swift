import GRDB
import SQLiteSupport
import Testing

@Suite("writeToCompletion")
struct WriteToCompletionTests {
    @Test("commits in a cancelled task, where GRDB's write is refused")
    func commitsInACancelledTask() async throws {
        try await RawStatementTests.withTable { pool in
            let task = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                await #expect(throws: CancellationError.self) {
                    try await pool.write { db in try db.execute(sql: "INSERT INTO t (text) VALUES ('write')") }
                }
                return try await pool.writeToCompletion { db in
                    try db.execute(sql: "INSERT INTO t (text) VALUES ('to completion')")
                    return db.lastInsertedRowID
                }
            }
            #expect(try await task.value == 1)
            let texts = try await pool.read { db in try String.fetchAll(db, sql: "SELECT text FROM t") }
            #expect(texts == ["to completion"])
        }
    }

    @Test("an error thrown by the updates rolls the transaction back and reaches the caller")
    func errorsRollBack() async throws {
        struct Refused: Error {}
        try await RawStatementTests.withTable { pool in
            await #expect(throws: Refused.self) {
                try await pool.writeToCompletion { db in
                    try db.execute(sql: "INSERT INTO t (text) VALUES ('rolled back')")
                    throw Refused()
                }
            }
            let count = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") }
            #expect(count == 0)
        }
    }
}
