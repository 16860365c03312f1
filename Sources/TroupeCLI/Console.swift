import ArgumentParser
import FoundationEssentials
import Glibc
package import Troupe

/// Runs a command's body, turning any error into a message on standard error and the exit code of the table in
/// `troupe --help`.
func reportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        throw TroupeCommand.fail(error)
    }
}

extension GlobalOptions {
    /// Where `--database` (or `TROUPE_DATABASE`, or the default file) points.
    func location() throws -> StoreLocation {
        try StoreLocation(
            databasePath,
            busyTimeout: try DurationInput.seconds(busyTimeout, "--busy-timeout"),
            retention: retain
        )
    }

    /// Opens the store. Commands that only look (`ps`, `tree`, …) want an existing one: a typo in `--database`
    /// must not silently create an empty file.
    package func openStore(mustExist: Bool, readOnly: Bool = false) async throws -> any OperatorStore {
        var location = try location()
        location.readOnly = readOnly
        if mustExist, !location.exists {
            throw TroupeError(
                .unknownRun,
                "there is no database at '\(location.rest)'. Start a run first (`troupe run BLUEPRINT`), or pass "
                    + "--database (or TROUPE_DATABASE) to name the file."
            )
        }
        return try await StoreFactory.open(location)
    }

    /// Opens the store, runs `body` with it, and closes it. Verbs that only look pass `readOnly`: they never
    /// create, migrate or write the database.
    func withStore<T>(
        mustExist: Bool = true,
        readOnly: Bool = false,
        _ body: (any OperatorStore) async throws -> T
    ) async throws -> T {
        let store = try await openStore(mustExist: mustExist, readOnly: readOnly)
        do {
            let result = try await body(store)
            await store.close()
            return result
        } catch {
            await store.close()
            throw error
        }
    }
}

/// Prints one value as JSON (stable, sorted keys).
func printJSON(_ value: some Encodable) {
    say(jsonText(value))
}

/// JSON as every command prints it: sorted keys, and times in RFC 3339 with milliseconds, UTC.
package func jsonText(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = .custom { date, encoder in
        var container = encoder.singleValueContainer()
        try container.encode(timestamp(date))
    }
    guard let data = try? encoder.encode(value) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}

/// Left-aligned columns, two spaces apart.
func printTable(_ header: [String], _ rows: [[String]]) {
    for line in tableLines(header, rows) { say(line) }
}

/// ``printTable(_:_:)``'s lines.
func tableLines(_ header: [String], _ rows: [[String]]) -> [String] {
    let all = [header] + rows
    var widths = [Int](repeating: 0, count: header.count)
    for row in all {
        for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
    }
    return all.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padded(to: widths[index])
        }.joined(separator: "  ").trimmingTrailingSpaces()
    }
}

/// Milliseconds since 1970, now.
func nowMilliseconds() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
}

/// How long ago `date` was, briefly: `42s`, `7m`, `3h`, `2d`.
func age(_ date: Date, now: Int64 = nowMilliseconds()) -> String {
    age(milliseconds(date), now: now)
}

func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded()) }

/// A time as `timestamp(_:)` writes it.
func timestamp(_ date: Date) -> String { timestamp(milliseconds(date)) }

/// How long ago `milliseconds` was, briefly: `42s`, `7m`, `3h`, `2d`.
func age(_ milliseconds: Int64, now: Int64 = nowMilliseconds()) -> String {
    let seconds = max(0, (now - milliseconds) / 1000)
    if seconds < 120 { return "\(seconds)s" }
    if seconds < 7200 { return "\(seconds / 60)m" }
    if seconds < 172_800 { return "\(seconds / 3600)h" }
    return "\(seconds / 86400)d"
}

/// A UTC timestamp such as `2026-11-25T01:02:03.456Z`.
func timestamp(_ milliseconds: Int64) -> String {
    var seconds = time_t(milliseconds / 1000)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
    let millis = Int(milliseconds % 1000)
    let fraction = String(repeating: "0", count: 3 - String(millis).count) + String(millis)
    return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):"
        + "\(two(parts.tm_min)):\(two(parts.tm_sec)).\(fraction)Z"
}

/// Reads `--param KEY=VALUE` options.
func parseParameters(_ options: [String]) throws -> [String: String] {
    var result: [String: String] = [:]
    for option in options {
        guard let equals = option.firstIndex(of: "="), equals != option.startIndex else {
            throw TroupeError(.invalidSpec, "--param takes KEY=VALUE, not '\(option)'.")
        }
        result[String(option[..<equals])] = String(option[option.index(after: equals)...])
    }
    return result
}

/// An event as every command prints it in JSON (`run --json`, `demo --json`, `events --json`): one schema.
package struct EventLine: Encodable {
    var type = "event"
    var sequence: Int64?
    var run: RunID
    var agent: String
    var incarnation: UInt64
    var event: String
    var detail: String
    var time: Date

    package init(_ record: EventRecord) {
        sequence = record.sequence == 0 ? nil : record.sequence
        run = record.run
        agent = record.agent
        incarnation = record.incarnation
        event = record.event
        detail = record.detail
        time = record.time
    }
}

/// The owner column of listings.
func ownerText(_ owner: RunSummary.Owner?) -> String {
    guard let owner, owner.alive else { return "-" }
    guard let worker = owner.worker else { return "pid \(owner.pid) on \(owner.host)" }
    return "worker \(worker), pid \(owner.pid) on \(owner.host)"
}

/// Seconds in a duration.
package func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// A duration as seconds with milliseconds: `0.012s`.
package func shortDuration(_ duration: Duration) -> String {
    let whole = Int((seconds(duration) * 1000).rounded())
    return "\(whole / 1000).\(String(repeating: "0", count: 3 - String(whole % 1000).count))\(whole % 1000)s"
}

/// The run `text` names in `store`: the run with that id, else the one run whose id begins with it (as `git` and
/// `docker` take a prefix). No run: ``TroupeError/Code/unknownRun`` (exit 66). Several: a usage error (exit 64)
/// that lists them.
package func resolveRun(_ text: String, in store: any OperatorStore) async throws -> String {
    do {
        _ = try await store.run(RunID(text))
        return text
    } catch let error as TroupeError where error.code == .unknownRun {
        guard !text.isEmpty else { throw error }
        let matches = try await store.runs().map(\.id.rawValue).filter { $0.hasPrefix(text) }.sorted()
        guard let only = matches.first else { throw error }
        guard matches.count == 1 else {
            let shown = matches.prefix(5).joined(separator: ", ") + (matches.count > 5 ? ", …" : "")
            throw ValidationError(
                "'\(text)' is the beginning of \(matches.count) runs (\(shown)); give more of the run's id (`troupe ps` lists them)."
            )
        }
        return only
    }
}

extension GlobalOptions {
    /// The full id of the run `text` names (``resolveRun(_:in:)``), looked up read-only.
    func resolvedRun(_ text: String) async throws -> String {
        try await withStore(readOnly: true) { try await resolveRun(text, in: $0) }
    }
}

/// The values of a repeatable option whose values may also be separated by commas (`--status a,b --status c`),
/// spaces removed, empty ones dropped.
func commaSeparated(_ values: [String]) -> [String] {
    values.flatMap { $0.split(separator: ",") }.map { String($0.filter { $0 != " " }) }.filter { !$0.isEmpty }
}

/// What an agent waits for, as the tables show it: `(waits for signal 'approve' 3m, until 2026-12-08T10:00:00Z)`.
func waitingText(_ waiting: Waiting) -> String {
    "(waits for \(waiting.what) \(age(waiting.since))" + (waiting.until.map { ", until \(timestamp($0))" } ?? "") + ")"
}
