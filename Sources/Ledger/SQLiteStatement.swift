import GRDB
// GRDBSQLite comes with GRDB (a dependency of GRDB's target); the ledger needs the C API to
// drive its hot statements without GRDB's per-value boxing.
import GRDBSQLite

/// A cached GRDB statement driven through the SQLite C API, for the statements that run once
/// or twice per transfer in a commit (account reads and writes, transfer inserts and reads).
///
/// GRDB's `execute(arguments:)` and `Row` box every value into a `DatabaseValue` and look
/// columns up by name; binding and reading by index straight from Swift values is several
/// times cheaper per row. Every return code is checked; a failure throws GRDB's
/// `DatabaseError` without the bound values.
struct SQLiteStatement {
    /// Held so that the handle stays valid even if GRDB drops its cache (it does after a schema
    /// change, which a caller's `record` could make in the middle of a commit).
    private let statement: Statement
    private let handle: OpaquePointer
    private let connection: OpaquePointer?
    /// SQLite copies bound text before `sqlite3_bind_text` returns.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    init(_ db: Database, _ sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
        handle = statement.sqliteStatement
        connection = db.sqliteConnection
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    func bind(_ index: Int32, _ value: String) throws {
        var value = value
        try check(
            value.withUTF8 { sqlite3_bind_text(handle, index, $0.baseAddress, Int32($0.count), Self.transient) })
    }

    func bind(_ index: Int32, _ value: String?) throws {
        if let value { try bind(index, value) } else { try check(sqlite3_bind_null(handle, index)) }
    }

    func bind(_ index: Int32, _ value: Int64) throws {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    func bind(_ index: Int32, _ value: Int64?) throws {
        if let value { try bind(index, value) } else { try check(sqlite3_bind_null(handle, index)) }
    }

    /// Runs a statement that returns no rows; returns the number of rows it changed (0 when
    /// `ON CONFLICT DO NOTHING` applied or a `WHERE` matched nothing).
    func run() throws -> Int {
        defer { sqlite3_reset(handle) }
        let rc = sqlite3_step(handle)
        guard rc == SQLITE_DONE else { throw error(rc) }
        return Int(sqlite3_changes(connection))
    }

    /// Steps a query: `true` while a row is available. Call ``reset()`` when done.
    func next() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            sqlite3_reset(handle)
            throw error(rc)
        }
    }

    /// The rowid of the last row inserted on this connection.
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(connection) }

    func reset() {
        sqlite3_reset(handle)
    }

    func int64(_ column: Int32) -> Int64 {
        sqlite3_column_int64(handle, column)
    }

    func optionalInt64(_ column: Int32) -> Int64? {
        isNull(column) ? nil : sqlite3_column_int64(handle, column)
    }

    func string(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    func optionalString(_ column: Int32) -> String? {
        isNull(column) ? nil : string(column)
    }

    func isNull(_ column: Int32) -> Bool {
        sqlite3_column_type(handle, column) == SQLITE_NULL
    }

    private func check(_ rc: Int32) throws {
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    private func error(_ rc: Int32) -> DatabaseError {
        DatabaseError(
            resultCode: ResultCode(rawValue: rc), message: connection.map { String(cString: sqlite3_errmsg($0)) })
    }
}
