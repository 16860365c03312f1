import CSQLite

/// A prepared statement: bind values by position (from 1), step through rows, read columns (from 0).
///
/// A statement belongs to its ``Connection`` and, like it, to one thread at a time. Statements that a
/// connection caches are reset and their bindings cleared before being handed out again.
public final class Statement {
    let handle: OpaquePointer
    /// The statement's SQL text, for errors.
    public let sql: String
    private unowned let connection: Connection

    init(connection: Connection, sql: String) throws(SQLiteError) {
        var handle: OpaquePointer?
        let code = sqlite3_prepare_v3(connection.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
        guard code == SQLITE_OK, let handle else {
            throw SQLiteError(connection.handle, sql: sql, code: code)
        }
        self.handle = handle
        self.sql = sql
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    // MARK: Binding

    /// Binds an integer.
    public func bind(_ value: Int64, at index: Int32) throws(SQLiteError) {
        try check(sqlite3_bind_int64(handle, index, value))
    }

    /// Binds an integer.
    public func bind(_ value: Int, at index: Int32) throws(SQLiteError) {
        try check(sqlite3_bind_int64(handle, index, Int64(value)))
    }

    /// Binds a floating-point number.
    public func bind(_ value: Double, at index: Int32) throws(SQLiteError) {
        try check(sqlite3_bind_double(handle, index, value))
    }

    /// Binds text, or NULL.
    public func bind(_ value: String?, at index: Int32) throws(SQLiteError) {
        guard let value else { return try check(sqlite3_bind_null(handle, index)) }
        var text = value
        let code = text.withUTF8 { bytes in
            troupe_sqlite3_bind_text_transient(handle, index, bytes.baseAddress, Int32(bytes.count))
        }
        try check(code)
    }

    /// Binds a blob (an empty array binds an empty blob, not NULL).
    public func bind(_ value: [UInt8], at index: Int32) throws(SQLiteError) {
        let code = value.withUnsafeBytes { bytes in
            troupe_sqlite3_bind_blob_transient(handle, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(bytes.count))
        }
        try check(code)
    }

    /// Binds `value` at `index` without copying it (SQLite reads the array's storage in place), runs the statement to
    /// completion and resets it, which clears the binding: it never outlives the storage. For the writer's hot
    /// statements, where copying a state or a payload into SQLite was a `malloc`, a copy and a `free` per row.
    func execute(binding value: [UInt8], at index: Int32) throws(SQLiteError) {
        // `withUnsafeBytes` rethrows untyped: the error is carried out by hand.
        let failure: SQLiteError? = value.withUnsafeBytes { bytes in
            do throws(SQLiteError) {
                try check(sqlite3_bind_blob(handle, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(bytes.count), nil))
                try execute()
                return nil
            } catch {
                reset()
                return error
            }
        }
        if let failure { throw failure }
    }

    /// Binds `count` bytes of `bytes` from `offset` without copying them: the caller keeps them alive, and
    /// unchanged, until the statement is reset.
    func bindInPlace(_ bytes: UnsafeRawBufferPointer, from offset: Int, count: Int, at index: Int32) throws(SQLiteError) {
        let start = bytes.baseAddress.map { $0 + offset } ?? UnsafeRawPointer(bitPattern: 1)!
        try check(sqlite3_bind_blob(handle, index, start, Int32(count), nil))
    }

    /// Binds NULL.
    public func bindNull(at index: Int32) throws(SQLiteError) {
        try check(sqlite3_bind_null(handle, index))
    }

    /// Binds `values` to positions 1, 2, …
    public func bind(_ values: [SQLValue]) throws(SQLiteError) {
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            switch value {
            case .integer(let value): try bind(value, at: index)
            case .real(let value): try bind(value, at: index)
            case .text(let value): try bind(value, at: index)
            case .blob(let value): try bind(value, at: index)
            case .null: try bindNull(at: index)
            }
        }
    }

    // MARK: Stepping

    /// Runs the statement to its next row.
    ///
    /// - Returns: `true` if a row is available, `false` when the statement is done.
    /// - Throws: ``SQLiteError``, for instance `SQLITE_BUSY` after the busy timeout or `SQLITE_INTERRUPT`.
    @discardableResult
    public func step() throws(SQLiteError) -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = SQLiteError(connection.handle, sql: sql, code: code)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Binds `values`, runs the statement to completion and resets it.
    public func run(_ values: SQLValue...) throws(SQLiteError) {
        defer { reset() }
        try bind(values)
        while try step() {}
    }

    /// Runs the statement, with the values already bound, to completion; then resets it.
    public func execute() throws(SQLiteError) {
        defer { reset() }
        while try step() {}
    }

    /// Resets the statement and clears its bindings, ready for reuse.
    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    // MARK: Reading columns

    /// The integer in column `index` of the current row (0 for NULL).
    public func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }

    /// The integer in column `index` of the current row (0 for NULL).
    public func int(_ index: Int32) -> Int { Int(sqlite3_column_int64(handle, index)) }

    /// The number in column `index` of the current row.
    public func double(_ index: Int32) -> Double { sqlite3_column_double(handle, index) }

    /// Whether column `index` of the current row is NULL.
    public func isNull(_ index: Int32) -> Bool { sqlite3_column_type(handle, index) == SQLITE_NULL }

    /// The text in column `index` of the current row, or `nil` for NULL.
    public func text(_ index: Int32) -> String? {
        guard let pointer = sqlite3_column_text(handle, index) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, index))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    /// The bytes in column `index` of the current row (empty for NULL).
    public func blob(_ index: Int32) -> [UInt8] {
        let count = Int(sqlite3_column_bytes(handle, index))
        guard count > 0, let pointer = sqlite3_column_blob(handle, index) else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: count))
    }

    private func check(_ code: Int32) throws(SQLiteError) {
        guard code == SQLITE_OK else { throw SQLiteError(connection.handle, sql: sql, code: code) }
    }
}

/// A value to bind to a statement.
public enum SQLValue: Sendable, Hashable {
    case integer(Int64)
    case real(Double)
    case text(String?)
    case blob([UInt8])
    case null
}

extension SQLValue: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral {
    public init(integerLiteral value: Int64) { self = .integer(value) }
    public init(stringLiteral value: String) { self = .text(value) }
}
