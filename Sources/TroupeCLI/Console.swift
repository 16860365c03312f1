import ArgumentParser
import FoundationEssentials
import Glibc
import Troupe
import TroupeSQLite

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
    /// Opens the database. Commands that only look (`ps`, `tree`, …) want an existing file: a typo in
    /// `--database` must not silently create an empty one.
    func openStore(mustExist: Bool) async throws -> SQLiteStore {
        let path = databasePath
        if mustExist, access(path, F_OK) != 0 {
            throw TroupeError(
                .unknownRun,
                "there is no database at '\(path)'. Start a run first (`troupe run BLUEPRINT`), or pass --database "
                    + "(or TROUPE_DATABASE) to name the file."
            )
        }
        return try await SQLiteStore(
            path: path,
            configuration: .init(busyTimeout: try DurationInput.seconds(busyTimeout, "--busy-timeout"), retention: retain)
        )
    }

    /// Opens the database, runs `body` with it, and closes it.
    func withStore<T>(mustExist: Bool = true, _ body: (SQLiteStore) async throws -> T) async throws -> T {
        let store = try await openStore(mustExist: mustExist)
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
    print(jsonText(value))
}

func jsonText(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    guard let data = try? encoder.encode(value) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
}

/// Left-aligned columns, two spaces apart.
func printTable(_ header: [String], _ rows: [[String]]) {
    let all = [header] + rows
    var widths = [Int](repeating: 0, count: header.count)
    for row in all {
        for (index, cell) in row.enumerated() where index < widths.count { widths[index] = max(widths[index], cell.count) }
    }
    for row in all {
        let line = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padded(to: widths[index])
        }.joined(separator: "  ")
        print(line.trimmingTrailingSpaces())
    }
}

/// Milliseconds since 1970, now.
func nowMilliseconds() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_REALTIME, &time)
    return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
}

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

/// What a run's status column says: a `running` run whose process is gone crashed and can be resumed.
func displayStatus(_ run: SQLiteStore.RunSummary) -> String {
    if run.status == "running" || run.status == "paused" { return run.ownerAlive ? run.status : "crashed" }
    return run.status
}

/// How the CLI names an event and says what it carries, the same in every command's output.
func describe(_ kind: Event.Kind) -> (verb: String, detail: String) {
    switch kind {
    case .started: ("started", "")
    case .exited(.failed(let error)): ("crashed", "\(error)")
    case .exited(.cancelled): ("cancelled", "")
    case .exited(let reason): ("exited", "\(reason)")
    case .restarting(let delay, let restarts): ("restarting", "in \(shortDuration(delay)) (restart \(restarts))")
    case .escalated(let restarts, let period): ("escalated", "\(restarts) restarts within \(shortDuration(period))")
    case .deadLettered(let error, let failures): ("dead-letter", "after \(failures) crashes: \(error)")
    case .stopped: ("stopped", "")
    case .killed: ("killed", "cancelled after its graceful deadline")
    case .abandoned: ("abandoned", "ignored cancellation past its deadline")
    case .checkpointed(let sequence): ("checkpointed", "#\(sequence)")
    case .quarantined(let error): ("quarantined", error)
    }
}

/// Seconds in a duration.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// A duration as seconds with milliseconds: `0.012s`.
func shortDuration(_ duration: Duration) -> String {
    let whole = Int((seconds(duration) * 1000).rounded())
    return "\(whole / 1000).\(String(repeating: "0", count: 3 - String(whole % 1000).count))\(whole % 1000)s"
}
