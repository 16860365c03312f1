import ArgumentParser
import Logging
import Troupe

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print a run's durable event log.",
        discussion: """
            Each event has a sequence number (SEQ); `--since SEQ` prints only later ones, so a reader can stop and \
            carry on where it was, and `--since 10m` (a duration: s, m, h, d) only those of the last ten minutes. \
            `--kind` keeps only events of that name (repeat it, or separate names with commas), `--tail N` only the \
            last N. `--follow` keeps printing new events as they are written, until the run has ended and \
            everything was printed, or Ctrl-C.

            Examples:
              troupe events run-3f9c02ab --agent counter
              troupe events run-3f9c02ab --kind crashed,restarting --since 1h
              troupe events run-3f9c02ab --follow --since 120 --json
              troupe events --follow --kind crashed

            Without a run, --follow prints every run's new events as they are written (runs started meanwhile \
            too), each line with its run's id, until Ctrl-C.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The run; without it (with --follow), every run's new events.", completion: Completion.runs)
    var run: String?

    @Flag(help: "Keep printing new events as they happen.")
    var follow = false

    @Option(help: ArgumentHelp("Print only events after this sequence number, or within this long: 90s, 10m, 2h, 7d.", valueName: "seq-or-age"))
    var since: String?

    @Option(help: ArgumentHelp("Print only this agent's events.", valueName: "name"))
    var agent: String?

    @Option(name: .customLong("kind"), help: ArgumentHelp("Print only events of this name (repeat it, or separate names with commas).", valueName: "event"))
    var kinds: [String] = []

    @Option(help: ArgumentHelp("Print only the last N events (then follow, with --follow).", valueName: "n"))
    var tail: Int?

    var reader: EventReader {
        EventReader(global: global, run: run, follow: follow, since: since, agent: agent, kinds: kinds, tail: tail, logs: false)
    }

    func validate() throws { try reader.validate() }

    func run() async throws { try await reader.run() }
}

/// Reads a run's event log for `events` and `logs`: what there is, the last N, or (following) what comes.
struct EventReader {
    let global: GlobalOptions
    let run: String?
    let follow: Bool
    let since: String?
    let agent: String?
    let kinds: [String]
    let tail: Int?
    /// `troupe logs`: only `log` events, printed as log lines.
    let logs: Bool
    /// With `logs`, the least severe level printed.
    var level: Logger.Level = .trace

    /// Where `--since` starts: after a sequence number, or at a time (milliseconds since 1970).
    enum Start {
        case after(Int64)
        case at(Int64)
    }

    func start() throws -> Start {
        guard let since else { return .after(0) }
        if let sequence = Int64(since) {
            guard sequence >= 0 else { throw ValidationError("--since takes a sequence number from 0 up or a duration such as 10m, not '\(since)'") }
            return .after(sequence)
        }
        do {
            return .at(nowMilliseconds() - (try DurationInput.age(since, "--since")))
        } catch {
            throw ValidationError("--since takes a sequence number or a duration such as 10m: \(error.description)")
        }
    }

    /// The event names `--kind` keeps, each checked; `nil`: all.
    func wantedKinds() throws -> Set<String>? {
        let names = commaSeparated(kinds)
        guard !names.isEmpty else { return nil }
        for name in names where !Event.Kind.names.contains(name) {
            throw ValidationError("--kind '\(name)' is not an event; use one of \(Event.Kind.names.joined(separator: ", "))")
        }
        return Set(names)
    }

    func validate() throws {
        if run == nil {
            guard follow else { throw ValidationError("name the run (`troupe ps` lists them), or pass --follow to follow every run") }
            if agent != nil || tail != nil { throw ValidationError("--agent and --tail need a run") }
            if case .after(let sequence) = try start(), sequence > 0 { throw ValidationError("--since SEQ needs a run; --since 10m works for every run") }
        }
        _ = try start()
        _ = try wantedKinds()
        if let tail, tail < 0 { throw ValidationError("--tail takes a number of events from 0 up, not \(tail)") }
    }

    func run() async throws {
        try await reportingErrors {
            guard let named = self.run else { return try await global.withStore(readOnly: true) { try await followAll($0) } }
            let run = try await global.resolvedRun(named)
            try await global.withStore(readOnly: true) { store in
                let id = RunID(run)
                _ = try await store.run(id)
                if let agent {
                    let names = try await store.agents(of: id).map(\.name)
                    guard names.contains(agent) else {
                        throw MissingInput(
                            description: "run \(id) has no agent '\(agent)'. Its agents: "
                                + "\(names.isEmpty ? "none yet" : names.joined(separator: ", "))."
                        )
                    }
                }
                // Watched before the first read, so that nothing logged in between is missed.
                var hints = (follow ? store.eventHints(of: id) : AsyncStream { $0.finish() }).makeAsyncIterator()
                var last: Int64 = 0
                var from: Int64?
                switch try start() {
                case .after(let sequence): last = sequence
                case .at(let time): from = time
                }
                let wanted = try filter(from: from)
                // With --tail, the last N of what is there now, then (with --follow) what comes.
                var backlog: [EventRecord]?
                if let tail {
                    var kept: [EventRecord] = []
                    while true {
                        let page = try await store.events(of: id, since: last, agent: agent, limit: 10_000)
                        kept = Array((kept + page.filter(wanted)).suffix(tail))
                        last = page.last?.sequence ?? last
                        if page.count < 10_000 { break }
                    }
                    backlog = kept
                }
                var printedHeader = false
                while true {
                    let page: [EventRecord]
                    if let pending = backlog {
                        page = []
                        backlog = nil
                        try print(pending, header: &printedHeader)
                        if !follow { return }
                    } else {
                        page = try await store.events(of: id, since: last, agent: agent, limit: 10_000)
                    }
                    let events = page.filter(wanted)
                    try print(events, header: &printedHeader)
                    last = page.last?.sequence ?? last
                    if page.count == 10_000 { continue }
                    guard follow else { return }
                    if page.isEmpty {
                        let summary = try await store.run(id)
                        if !summary.isDriven {
                            // Said, not left to guess: a follow that ends because the owner died.
                            if !summary.status.hasEnded {
                                printError(
                                    "troupe: run \(id) has no live process (\(summary.status.rawValue)); nothing more will be "
                                        + "logged until `troupe resume \(id)` (or a worker) takes it on"
                                )
                            }
                            return
                        }
                    }
                    // Until the store hints that new events may be there (on PostgreSQL, a notification from the
                    // writer's commit; elsewhere every 200 ms).
                    if await hints.next() == nil { try await Task.sleep(for: .milliseconds(200)) }
                }
            }
        }
    }

    /// Every run's events from now on (or from `--since AGE`), runs started meanwhile included, with the run's id
    /// on each line, until Ctrl-C. A run is read to its end once it has ended, then left alone.
    private func followAll(_ store: any OperatorStore) async throws {
        let from: Int64
        if case .at(let time) = try start() { from = time } else { from = nowMilliseconds() }
        let wanted = try filter(from: from)
        var seen: [RunID: Int64] = [:]
        var finished: Set<RunID> = []
        var printedHeader = false
        while !Task.isCancelled {
            for run in try await store.runs().reversed() where !finished.contains(run.id) {
                var after = seen[run.id] ?? 0
                while true {
                    let page = try await store.events(of: run.id, since: after, agent: nil, limit: 10_000)
                    try print(page.filter(wanted), header: &printedHeader, withRun: true)
                    after = page.last?.sequence ?? after
                    if page.count < 10_000 { break }
                }
                seen[run.id] = after
                if run.status.hasEnded { finished.insert(run.id) }
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// Which events to print: of the `--kind`s asked for (agents' log lines only when asked for, by `--kind log`
    /// or `troupe logs`), at `from` (milliseconds since 1970) or later, and for `logs` at `level` or above.
    private func filter(from: Int64?) throws -> @Sendable (EventRecord) -> Bool {
        let kinds = try wantedKinds()
        let least = level
        let logs = self.logs
        return { event in
            guard kinds?.contains(event.event) ?? (event.event != "log"), from.map({ milliseconds(event.time) >= $0 }) ?? true else {
                return false
            }
            guard logs, least > .trace else { return true }
            return LogLine(event).level.map { $0 >= least } ?? true
        }
    }

    /// Prints events as a table (its header once; the run's id first when following every run) or as JSON lines.
    private func print(_ events: [EventRecord], header printedHeader: inout Bool, withRun: Bool = false) throws {
        if global.json {
            for event in events { say(jsonText(EventLine(event))) }
        } else if logs {
            // As log lines: time, agent and incarnation, level, message.
            for event in events {
                let line = LogLine(event)
                let fields = [
                    timestamp(event.time), "\(event.agent)#\(event.incarnation)".padded(to: 16),
                    (line.level?.rawValue ?? "").padded(to: 8), line.message,
                ]
                say(((withRun ? [event.run.rawValue] : []) + fields).joined(separator: " ").trimmingTrailingSpaces())
            }
        } else {
            if !printedHeader, !events.isEmpty {
                let header = ["SEQ".padded(to: 7), "TIME".padded(to: 24), "AGENT".padded(to: 16), "EVENT".padded(to: 13), "DETAIL"]
                say(((withRun ? ["RUN".padded(to: 14)] : []) + header).joined(separator: " ").trimmingTrailingSpaces())
                printedHeader = true
            }
            for event in events {
                let fields = [
                    String(event.sequence).padded(to: 7), timestamp(event.time).padded(to: 24),
                    "\(event.agent)#\(event.incarnation)".padded(to: 16), event.event.padded(to: 13), event.detail,
                ]
                say(((withRun ? [event.run.rawValue.padded(to: 14)] : []) + fields).joined(separator: " ").trimmingTrailingSpaces())
            }
        }
        flushOutput()
    }
}

/// A `log` event as a line: the level its detail begins with, and the message after it.
struct LogLine {
    var level: Logger.Level?
    var message: String

    init(_ event: EventRecord) {
        let parts = event.detail.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        if let first = parts.first, let level = Logger.Level(rawValue: String(first)) {
            self.level = level
            message = parts.count > 1 ? String(parts[1]) : ""
        } else {
            level = nil
            message = event.detail
        }
    }
}
