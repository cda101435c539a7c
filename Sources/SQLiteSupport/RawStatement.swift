public import GRDB
// GRDBSQLite comes with GRDB (a dependency of GRDB's target). Imported publicly because the
// methods below are inlinable: they run per value on the hot paths of other modules.
public import GRDBSQLite

/// A cached GRDB statement driven through the SQLite C API, for the statements that run once
/// or more per record on the hot paths: the insert of tokenize, the selects of the read paths,
/// rewrap, and the account and transfer statements of a ledger commit.
///
/// GRDB's `execute(arguments:)` and `Row` box every value into a `DatabaseValue`, copy blobs
/// through `Data` and look columns up by name; binding and reading by index straight from
/// Swift values is several times cheaper per row. Every return code is checked; a failure
/// throws GRDB's `DatabaseError` without the bound values.
///
/// Text is bound and read with its length (never up to a NUL), and a text or blob parameter is
/// copied by SQLite before the bind returns, so no Swift storage is retained by the statement.
/// (Not `SQLiteStatement`: GRDB exports that name for the C handle's type.)
public struct RawStatement {
    /// Held so that the handle stays valid even if GRDB drops its cache (it does after a schema
    /// change, which code running between two uses of this statement could make).
    @usableFromInline let statement: Statement
    @usableFromInline let handle: OpaquePointer
    @usableFromInline let connection: OpaquePointer?
    /// `SQLITE_TRANSIENT`: SQLite copies bound text and blobs before `sqlite3_bind_*` returns.
    /// Computed, so that it folds to a constant in the callers' code (a stored `static let`
    /// would cost them a call to its lazy initializer's addressor per bind).
    @inlinable static var transient: sqlite3_destructor_type {
        unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
    }

    /// The statement of `sql` from `db`'s statement cache, reset and with no bindings left
    /// from an earlier use.
    @inlinable
    public init(_ db: Database, _ sql: String) throws {
        statement = try db.cachedStatement(sql: sql)
        handle = statement.sqliteStatement
        connection = db.sqliteConnection
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    // MARK: Binding (parameters are numbered from 1)

    @inlinable
    public func bind(_ index: Int32, _ value: String) throws {
        var value = value
        try check(
            value.withUTF8 { sqlite3_bind_text(handle, index, $0.baseAddress, Int32($0.count), Self.transient) })
    }

    @inlinable
    public func bind(_ index: Int32, _ value: String?) throws {
        if let value { try bind(index, value) } else { try check(sqlite3_bind_null(handle, index)) }
    }

    @inlinable
    public func bind(_ index: Int32, _ value: Int64) throws {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    @inlinable
    public func bind(_ index: Int32, _ value: Int64?) throws {
        if let value { try bind(index, value) } else { try check(sqlite3_bind_null(handle, index)) }
    }

    /// Binds a blob (an empty array binds an empty blob, not NULL).
    @inlinable
    public func bind(_ index: Int32, _ value: [UInt8]) throws {
        try check(
            value.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), Self.transient) })
    }

    // MARK: Stepping

    /// Runs a statement that returns no rows; returns the number of rows it changed (0 when
    /// `ON CONFLICT DO NOTHING` applied or a `WHERE` matched nothing). Leaves the statement reset.
    @inlinable
    public func run() throws -> Int {
        defer { sqlite3_reset(handle) }
        let rc = sqlite3_step(handle)
        guard rc == SQLITE_DONE else { throw error(rc) }
        return Int(sqlite3_changes(connection))
    }

    /// Steps a query: `true` while a row is available. Call ``reset()`` when done; a failed
    /// step resets the statement itself before it throws.
    @inlinable
    public func next() throws -> Bool {
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
    @inlinable
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(connection) }

    @inlinable
    public func reset() {
        sqlite3_reset(handle)
    }

    // MARK: Reading the current row (columns are numbered from 0)

    @inlinable
    public func int64(_ column: Int32) -> Int64 {
        sqlite3_column_int64(handle, column)
    }

    @inlinable
    public func optionalInt64(_ column: Int32) -> Int64? {
        isNull(column) ? nil : sqlite3_column_int64(handle, column)
    }

    /// The column as text, with its stored length ("" for NULL).
    @inlinable
    public func string(_ column: Int32) -> String {
        // `sqlite3_column_text` first, then `sqlite3_column_bytes`: the length of the text as
        // converted, as SQLite's documentation asks.
        guard let text = sqlite3_column_text(handle, column) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    @inlinable
    public func optionalString(_ column: Int32) -> String? {
        isNull(column) ? nil : string(column)
    }

    /// The column as a blob ([] for NULL or an empty blob).
    @inlinable
    public func bytes(_ column: Int32) -> [UInt8] {
        // `sqlite3_column_blob` first, then `sqlite3_column_bytes`, as for text.
        guard let blob = sqlite3_column_blob(handle, column) else { return [] }
        let count = Int(sqlite3_column_bytes(handle, column))
        return Array(UnsafeRawBufferPointer(start: blob, count: count))
    }

    @inlinable
    public func isNull(_ column: Int32) -> Bool {
        sqlite3_column_type(handle, column) == SQLITE_NULL
    }

    // MARK: Errors

    @inlinable
    func check(_ rc: Int32) throws {
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    @usableFromInline
    func error(_ rc: Int32) -> DatabaseError {
        DatabaseError(
            resultCode: ResultCode(rawValue: rc), message: connection.map { String(cString: sqlite3_errmsg($0)) })
    }
}
