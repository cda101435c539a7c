import GRDB
import GRDBSQLite

/// A cached GRDB statement driven through the SQLite C API, for the statements that run once
/// per record on the hot paths (the insert of tokenize, the select and update of rewrap).
///
/// GRDB's `execute(arguments:)` and `Row` box every value into a `DatabaseValue` and copy
/// blobs through `Data`; binding and reading straight from Swift values is measurably cheaper
/// per row. Every return code is checked; a failure throws GRDB's `DatabaseError` without the
/// bound values.
struct RawStatement {
    private let handle: OpaquePointer
    private let connection: OpaquePointer?
    /// SQLite copies bound text and blobs before `sqlite3_bind_*` returns.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    init(_ statement: Statement, in db: Database) {
        handle = statement.sqliteStatement
        connection = db.sqliteConnection
        sqlite3_reset(handle)
    }

    func bind(_ index: Int32, _ value: String) throws {
        try check(value.withCString { sqlite3_bind_text(handle, index, $0, -1, Self.transient) })
    }

    func bind(_ index: Int32, _ value: Int64) throws {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    func bind(_ index: Int32, _ value: [UInt8]) throws {
        try check(
            value.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), Self.transient) })
    }

    /// Runs a statement that returns no rows; returns the number of rows it changed (0 when
    /// `ON CONFLICT DO NOTHING` applied).
    func run() throws -> Int {
        defer { sqlite3_reset(handle) }
        let rc = sqlite3_step(handle)
        guard rc == SQLITE_DONE else { throw error(rc) }
        return Int(sqlite3_changes(connection))
    }

    /// Steps a query: `true` while a row is available. Reset with ``reset()`` when done.
    func next() throws -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw error(rc)
        }
    }

    func reset() {
        sqlite3_reset(handle)
    }

    func int64(_ column: Int32) -> Int64 {
        sqlite3_column_int64(handle, column)
    }

    func string(_ column: Int32) -> String {
        guard let text = sqlite3_column_text(handle, column) else { return "" }
        return String(cString: text)
    }

    func isNull(_ column: Int32) -> Bool {
        sqlite3_column_type(handle, column) == SQLITE_NULL
    }

    func bytes(_ column: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, column))
        guard count > 0, let blob = sqlite3_column_blob(handle, column) else { return [] }
        return Array(UnsafeRawBufferPointer(start: blob, count: count))
    }

    private func check(_ rc: Int32) throws {
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    private func error(_ rc: Int32) -> DatabaseError {
        DatabaseError(
            resultCode: ResultCode(rawValue: rc), message: connection.map { String(cString: sqlite3_errmsg($0)) })
    }
}
