import CPostgres
import FoundationEssentials
import Glibc
import Troupe

/// A value for a statement's parameter (`$1`, `$2`, …). Numbers and text travel in PostgreSQL's text format and
/// take the type the statement gives them; bytes travel as binary `bytea`.
package enum PGValue {
    case null
    case int(Int64)
    case text(String?)
    case bytes([UInt8])
    case double(Double)
    /// A `bytea[]` of non-NULL elements, sent in binary.
    case byteaArray([[UInt8]])
}

/// An error from libpq or the server.
struct PostgresError: Error, CustomStringConvertible {
    /// The server's SQLSTATE (`23505` unique violation, `57014` query cancelled, …); empty for a connection-level
    /// error.
    var sqlState: String
    var message: String

    var description: String { sqlState.isEmpty ? message : "\(message) [SQLSTATE \(sqlState)]" }

    /// The statement was cancelled (server-side cancel).
    var isCancelled: Bool { sqlState == "57014" }
    /// The connection failed or was closed: the session is gone, with it any transaction and lock.
    var isConnectionLost: Bool { sqlState.isEmpty || sqlState.hasPrefix("08") || sqlState == "57P01" }
    /// A serialization failure or deadlock: the transaction can be tried again.
    var isRetryable: Bool { sqlState == "40001" || sqlState == "40P01" }

    /// The server answered a connection attempt that it is starting up or recovering from a crash (SQLSTATE
    /// 57P03 at startup): at that moment it serves no session at all, this process's or any other's.
    ///
    /// libpq gives a refused connection's message, not its SQLSTATE (`PQping` reports 57P03, but 57P03 also means
    /// "shutting down", when a smart shutdown still serves the sessions it has). So the server's own words are
    /// matched, as PostgreSQL writes them in English: a server whose messages are translated is never taken to be
    /// recovering, and the worker fences itself after the usual silence: the safe side.
    var saysServerIsRecovering: Bool {
        sqlState.isEmpty
            && ["the database system is starting up", "the database system is not yet accepting connections",
                "the database system is in recovery mode"].contains { message.contains($0) }
    }
}

/// One libpq connection (`PGconn`).
///
/// Why the system's libpq rather than postgres-nio: the store's model is the SQLite store's — a writer thread that
/// group-commits, blocking calls kept off the cooperative pool — and libpq fits it as it is, with server-side
/// cancellation (`PQcancel`), `LISTEN` on a connection the store's own thread polls, and TCP keepalive and
/// `tcp_user_timeout` settings that bound how long a partition goes unnoticed. postgres-nio would bring SwiftNIO,
/// its TLS and crypto packages into the engine's build for an event loop the store does not otherwise need. Its
/// throughput was not measured against this; the commit path's cost here is round trips and the server's work, one
/// prepared statement per batch, which either client pays alike.
///
/// Confined to one thread: its owner (a store's writer thread, or its reader queue) is the only caller of
/// everything but ``cancel()``, which libpq documents as safe from any thread (`PQcancel` on a `PGcancel` made
/// beforehand). Every call blocks its thread, which is never one of the cooperative pool's. `@unchecked Sendable`
/// so that a cancellation handler can hold it; it calls nothing but ``cancel()``.
package final class PGConnection: @unchecked Sendable {
    private let raw: OpaquePointer
    /// Made once after connecting; `PQcancel` on it asks the server to stop the running statement.
    private let cancelHandle: OpaquePointer?
    /// Where it connects, without a password, for messages.
    let location: String
    /// Statements prepared on this session, by text: parsed and planned once, not at every execution (the commit
    /// statement's planning cost more than its execution). Bounded; confined to the owning thread like the rest.
    private var prepared: [String: String] = [:]
    private static let preparedLimit = 256

    /// Connects (blocking) to `url` (`postgres://USER@HOST:PORT/DATABASE?…`, or libpq's `key=value` form).
    package init(url: String, applicationName: String = "troupe") throws {
        location = Self.redacted(url)
        // A dead peer or a partition is noticed within seconds (TCP keepalives, and a send unacknowledged for 5 s
        // fails), not after the kernel's two hours. The URL's own settings win: they come after, in `dbname`.
        let keys = [
            "connect_timeout", "application_name", "keepalives", "keepalives_idle", "keepalives_interval",
            "keepalives_count", "tcp_user_timeout", "dbname",
        ]
        let values = ["10", applicationName, "1", "2", "1", "3", "5000", url]
        let connection = keys.withCStrings { keyPointers in
            values.withCStrings { valuePointers in PQconnectdbParams(keyPointers, valuePointers, 1) }
        }
        guard let connection else {
            throw PostgresError(sqlState: "", message: "out of memory while connecting to \(location)")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection)).trimmed
            PQfinish(connection)
            throw PostgresError(sqlState: "", message: message)
        }
        raw = connection
        cancelHandle = PQgetCancel(connection)
        // The server's notices (a `ROLLBACK` with nothing to roll back) are not errors: not printed to stderr.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
    }

    deinit {
        if let cancelHandle { PQfreeCancel(cancelHandle) }
        PQfinish(raw)
    }

    /// `url` naming database `name` instead of its own (a `postgres://` URL, or a key-value string).
    package static func url(_ url: String, database name: String) -> String {
        guard let scheme = url.firstRange(of: "://") else { return url + " dbname=\(name)" }
        let rest = url[scheme.upperBound...]
        let query = rest.firstIndex(of: "?") ?? rest.endIndex
        let slash = rest[..<query].firstIndex(of: "/") ?? query
        return String(url[..<slash]) + "/" + name + String(rest[query...])
    }

    /// `url` without its password (`postgres://user:secret@host/db` → `postgres://user@host/db`), for messages.
    static func redacted(_ url: String) -> String {
        let parts = url.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            return url.split(separator: " ").filter { !$0.hasPrefix("password=") }.joined(separator: " ")
        }
        let rest = parts[1]
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        guard let at = authority.lastIndex(of: "@") else { return url }
        let user = authority[..<at].prefix { $0 != ":" }
        return parts[0] + "://" + user + rest[at...]
    }

    /// Whether the session still works.
    var isHealthy: Bool { PQstatus(raw) == CONNECTION_OK }

    /// The server's process for this session (`pg_backend_pid()`).
    var backendPID: Int32 { PQbackendPID(raw) }

    /// Asks the server to stop this session's running statement, from any thread. A statement not started yet is
    /// not affected: callers check their own stop flag before each statement.
    func cancel() {
        guard let cancelHandle else { return }
        var buffer = [CChar](repeating: 0, count: 256)
        _ = PQcancel(cancelHandle, &buffer, Int32(buffer.count))
    }

    /// The session's socket, to wait for notifications with `poll`.
    var socket: Int32 { PQsocket(raw) }

    /// Reads what the server sent and returns the notifications received (`LISTEN`), in order: channel and payload.
    /// Throws when the connection is lost.
    func notifications() throws -> [(channel: String, payload: String)] {
        guard PQconsumeInput(raw) == 1 else { throw connectionError() }
        var received: [(channel: String, payload: String)] = []
        while let notification = PQnotifies(raw) {
            received.append((String(cString: notification.pointee.relname), String(cString: notification.pointee.extra)))
            PQfreemem(notification)
        }
        return received
    }

    /// Runs one or more statements without parameters (migrations, `BEGIN`, `COMMIT`).
    package func execute(_ sql: String) throws {
        guard let result = PQexec(raw, sql) else { throw connectionError() }
        defer { PQclear(result) }
        try check(result)
    }

    /// Runs one statement with parameters; rows come back in binary form.
    @discardableResult
    package func query(_ sql: String, _ parameters: PGValue...) throws -> PGRows {
        try query(sql, parameters)
    }

    /// Runs one statement with parameters; rows come back in binary form.
    @discardableResult
    func query(_ sql: String, _ parameters: [PGValue]) throws -> PGRows {
        let count = parameters.count
        var values = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
        var lengths = [Int32](repeating: 0, count: count)
        var formats = [Int32](repeating: 0, count: count)
        var types = [Oid](repeating: 0, count: count)
        defer { for value in values { value?.deallocate() } }
        for (index, parameter) in parameters.enumerated() {
            func copy(_ bytes: some Collection<UInt8>, binary: Bool) {
                let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count + 1)
                var offset = 0
                for byte in bytes {
                    buffer[offset] = CChar(bitPattern: byte)
                    offset += 1
                }
                buffer[offset] = 0
                values[index] = buffer
                lengths[index] = Int32(bytes.count)
                formats[index] = binary ? 1 : 0
            }
            switch parameter {
            case .null, .text(nil): break
            case .int(let value): copy(String(value).utf8, binary: false)
            case .double(let value): copy(String(value).utf8, binary: false)
            case .text(let value?): copy(value.utf8, binary: false)
            case .bytes(let value):
                copy(value, binary: true)
                types[index] = 17  // bytea
            case .byteaArray(let elements):
                copy(Self.binaryArray(elements), binary: true)
                types[index] = 1001  // bytea[]
            }
        }
        let name = try preparedName(sql, types: types)
        let result = values.withUnsafeBufferPointer { valuePointers in
            valuePointers.withMemoryRebound(to: UnsafePointer<CChar>?.self) { constValues in
                if let name {
                    PQexecPrepared(raw, name, Int32(count), constValues.baseAddress, lengths, formats, 1)
                } else {
                    PQexecParams(raw, sql, Int32(count), types, constValues.baseAddress, lengths, formats, 1)
                }
            }
        }
        guard let result else { throw connectionError() }
        do {
            try check(result)
        } catch {
            PQclear(result)
            throw error
        }
        return PGRows(result)
    }

    /// The name of `sql` prepared on this session (preparing it at its first use), or `nil` once the session holds
    /// as many prepared statements as it keeps: then it is sent as text each time.
    private func preparedName(_ sql: String, types: [Oid]) throws -> String? {
        if let name = prepared[sql] { return name }
        guard prepared.count < Self.preparedLimit else { return nil }
        let name = "troupe_\(prepared.count)"
        guard let result = PQprepare(raw, name, sql, Int32(types.count), types) else { throw connectionError() }
        defer { PQclear(result) }
        try check(result)
        prepared[sql] = name
        return name
    }

    /// The binary form of a one-dimensional `bytea[]`: dimensions, no NULLs, element type 17, then each element's
    /// length and bytes (all integers big-endian).
    static func binaryArray(_ elements: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(20 + elements.reduce(0) { $0 + 4 + $1.count })
        func append(_ value: Int32) { withUnsafeBytes(of: value.bigEndian) { out.append(contentsOf: $0) } }
        append(1)
        append(0)
        append(17)
        append(Int32(elements.count))
        append(1)
        for element in elements {
            append(Int32(element.count))
            out.append(contentsOf: element)
        }
        return out
    }

    /// The first column of the first row as an integer, or `nil` when there is no row or it is NULL.
    package func scalar(_ sql: String, _ parameters: PGValue...) throws -> Int64? {
        let rows = try query(sql, parameters)
        guard rows.count > 0, !rows.isNull(0, 0) else { return nil }
        return rows.int64(0, 0)
    }

    /// Rolls back whatever transaction is open; errors are ignored (there may be none, or the session is gone).
    func rollback() {
        guard inTransaction else { return }
        if let result = PQexec(raw, "ROLLBACK") { PQclear(result) }
    }

    /// Whether a transaction is open (or failed and waiting for `ROLLBACK`).
    var inTransaction: Bool {
        let status = PQtransactionStatus(raw)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR
    }

    private func check(_ result: OpaquePointer) throws {
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY: return
        default:
            let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
            let message = String(cString: PQresultErrorMessage(result)).trimmed
            if state.isEmpty, !isHealthy { throw connectionError() }
            throw PostgresError(sqlState: state, message: message.isEmpty ? "statement failed" : message)
        }
    }

    private func connectionError() -> PostgresError {
        let message = String(cString: PQerrorMessage(raw)).trimmed
        return PostgresError(sqlState: "", message: "lost the connection to \(location): \(message.isEmpty ? "no reply" : message)")
    }
}

/// The rows of a statement, in binary form, read by column type.
package final class PGRows {
    private let result: OpaquePointer
    package let count: Int

    init(_ result: OpaquePointer) {
        self.result = result
        count = Int(PQntuples(result))
    }

    deinit { PQclear(result) }

    /// Rows changed by an `INSERT`, `UPDATE` or `DELETE`.
    var affected: Int { Int(String(cString: PQcmdTuples(result))) ?? 0 }

    package func isNull(_ row: Int, _ column: Int) -> Bool { PQgetisnull(result, Int32(row), Int32(column)) == 1 }

    private func bytes(_ row: Int, _ column: Int) -> UnsafeRawBufferPointer {
        let length = Int(PQgetlength(result, Int32(row), Int32(column)))
        guard let value = PQgetvalue(result, Int32(row), Int32(column)) else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: value, count: length)
    }

    private func bigEndian(_ row: Int, _ column: Int) -> Int64 {
        var value: Int64 = 0
        for byte in bytes(row, column) { value = value << 8 | Int64(byte) }
        let width = bytes(row, column).count * 8
        // Sign-extend int2 and int4.
        return width < 64 && width > 0 ? (value << (64 - width)) >> (64 - width) : value
    }

    /// An integer column (`int2`, `int4`, `int8`, `bool`); 0 when NULL.
    package func int64(_ row: Int, _ column: Int) -> Int64 {
        isNull(row, column) ? 0 : bigEndian(row, column)
    }

    package func int(_ row: Int, _ column: Int) -> Int { Int(int64(row, column)) }

    /// A text column; `nil` when NULL.
    package func text(_ row: Int, _ column: Int) -> String? {
        isNull(row, column) ? nil : String(decoding: bytes(row, column), as: UTF8.self)
    }

    /// A `bytea` column; empty when NULL.
    func blob(_ row: Int, _ column: Int) -> [UInt8] {
        isNull(row, column) ? [] : Array(bytes(row, column))
    }

    /// A `timestamptz` column (microseconds since 2000-01-01 UTC); `nil` when NULL.
    func date(_ row: Int, _ column: Int) -> Date? {
        guard !isNull(row, column) else { return nil }
        return Date(timeIntervalSince1970: 946_684_800 + Double(bigEndian(row, column)) / 1_000_000)
    }
}

extension Array where Element == String {
    /// Calls `body` with a NULL-terminated array of C strings.
    fileprivate func withCStrings<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
        let copies = map { strdup($0)! }
        defer { for copy in copies { free(copy) } }
        let pointers = copies.map { UnsafePointer<CChar>?($0) } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

extension String {
    /// Without leading and trailing white space (libpq's messages end in a newline).
    var trimmed: String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
