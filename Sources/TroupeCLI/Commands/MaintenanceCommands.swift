import ArgumentParser
import FoundationEssentials
import Troupe

struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete old checkpoints (all but the last N per agent) and, optionally, old events and runs.",
        discussion: """
            --runs-older-than deletes whole runs (as `troupe rm` does) that ended, or were last driven, longer ago \
            than the age, and that no live process drives; --status narrows them to those statuses (stopped, \
            completed, failed, cancelled, crashed).

            Examples:
              troupe prune --keep 3 --dry-run
              troupe prune --keep 1 --events-older-than 7d
              troupe prune --runs-older-than 30d --status completed --status cancelled
            """
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Checkpoints to keep per agent.", valueName: "n")) var keep = 3
    @Option(help: ArgumentHelp("Delete events older than this: 12h, 7d, 30m.", valueName: "age")) var eventsOlderThan: String?
    @Option(help: ArgumentHelp("Delete runs that ended (or were last driven) longer ago than this: 12h, 30d.", valueName: "age"))
    var runsOlderThan: String?
    @Option(help: ArgumentHelp("With --runs-older-than, only runs with this status (repeatable).", valueName: "status"))
    var status: [String] = []
    @Flag(help: "Only say what would be deleted.") var dryRun = false

    static let runStatuses = RunStatus.allCases.filter { !$0.isLive }.map(\.rawValue)

    func validate() throws {
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1 (an agent needs a checkpoint to resume from)") }
        for (option, text) in [("--events-older-than", eventsOlderThan), ("--runs-older-than", runsOlderThan)] {
            if let text, Self.milliseconds(text) == nil {
                throw ValidationError("\(option) takes an age from 0 to 10 years such as 30m, 12h or 7d, not '\(text)'")
            }
        }
        for value in status where !Self.runStatuses.contains(value) {
            throw ValidationError("--status takes \(Self.runStatuses.joined(separator: ", ")), not '\(value)'")
        }
        if !status.isEmpty, runsOlderThan == nil { throw ValidationError("--status goes with --runs-older-than") }
    }

    /// The runs --runs-older-than and --status select: not driven by a live process, ended (or last driven) before
    /// `cutoff`.
    static func doomedRuns(_ runs: [RunSummary], before cutoff: Int64, statuses: [String]) -> [RunID] {
        runs.filter { run in
            guard !run.isDriven else { return false }
            guard statuses.isEmpty || statuses.contains(run.status.rawValue) else { return false }
            return TroupeCLI.milliseconds(run.endedAt ?? run.owner?.heartbeatAt ?? run.createdAt) < cutoff
        }
        .map(\.id)
    }

    static func milliseconds(_ text: String) -> Int64? {
        let units: [(String, Double)] = [("m", 60), ("h", 3600), ("d", 86_400)]
        guard let age = try? DurationInput.parse(text, "--events-older-than", units: units, bare: nil) else { return nil }
        return DurationInput.milliseconds(age)
    }

    func run() async throws {
        try await reportingErrors {
            let before = eventsOlderThan.flatMap(Self.milliseconds).map { nowMilliseconds() - $0 }
            let runsBefore = runsOlderThan.flatMap(Self.milliseconds).map { nowMilliseconds() - $0 }
            let (report, runs) = try await global.withStore { store in
                var runs: [RunID] = []
                if let runsBefore {
                    runs = Self.doomedRuns(try await store.runs(), before: runsBefore, statuses: status)
                    if !dryRun { try await store.deleteRuns(runs) }
                }
                let cutoff = before.map { Date(timeIntervalSince1970: Double($0) / 1000) }
                return (try await store.prune(keep: keep, eventsBefore: cutoff, dryRun: dryRun), runs)
            }
            if global.json {
                return printJSON(["checkpoints": report.checkpoints, "events": report.events, "runs": runs.count])
            }
            let verb = dryRun ? "would delete" : "deleted"
            let runText = runsOlderThan == nil ? "" : ", \(runs.count) runs"
            say("troupe: \(verb) \(report.checkpoints) checkpoints and \(report.events) events\(runText)")
        }
    }
}

struct RmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm",
        abstract: "Delete runs that no process drives, with everything they stored.",
        discussion: """
            Deletes each run's agents, checkpoints, durable messages, dead letters, events and commands. A run that \
            a live process drives is refused (stop it with `troupe cancel` first); so is an unknown one. Either \
            way nothing is deleted.

            Examples:
              troupe rm run-3f9c02ab
              troupe rm run-3f9c02ab run-77e01a2c
            """
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The runs to delete.", completion: Completion.runs) var runs: [String]

    func validate() throws {
        guard !runs.isEmpty else { throw ValidationError("name at least one run to delete (`troupe ps` lists them)") }
    }

    func run() async throws {
        try await reportingErrors {
            let ids = try await global.withStore { store in
                var seen: Set<String> = []
                var ids: [RunID] = []
                for run in runs {
                    let id = try await resolveRun(run, in: store)
                    if seen.insert(id).inserted { ids.append(RunID(id)) }  // a run named twice is deleted once
                }
                try await store.deleteRuns(ids)
                return ids
            }
            if global.json { return printJSON(["deleted": ids.map(\.rawValue)]) }
            say("troupe: deleted \(ids.count == 1 ? "run \(ids[0])" : "\(ids.count) runs")")
        }
    }
}

struct BlueprintsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "blueprints",
        abstract: "List the blueprints this troupe can run, with their parameters."
    )

    @OptionGroup var global: GlobalOptions

    struct Listing: Encodable {
        var name: String
        var summary: String
        var parameters: [BlueprintEntry.Parameter]
        /// The agent whose last checkpoint is a run's result (`troupe result`), if any.
        var result: String?
    }

    func run() async throws {
        let entries = Catalog.entries
        if global.json {
            return printJSON(entries.map { Listing(name: $0.name, summary: $0.summary, parameters: $0.parameters, result: $0.result) })
        }
        let width = (entries.map(\.name.count).max() ?? 0) + 2
        for entry in entries {
            say("\(entry.name.padded(to: width))\(entry.summary)")
            for parameter in entry.parameters {
                let fallback = parameter.defaultValue.isEmpty ? "empty" : parameter.defaultValue
                let allowed = parameter.kind == .text ? "" : "\(parameter.kind.allowed); "
                say("  --param \(parameter.name)=…  \(parameter.help) (\(allowed)default: \(fallback))")
            }
            if let agent = entry.result { say("  result: the state of '\(agent)' (`troupe result RUN`)") }
        }
    }
}

struct DbCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Check or migrate the database.",
        subcommands: [Check.self, Migrate.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the store's own consistency check (on SQLite: the integrity check, and each agent's latest checkpoint against its head and its run's sum) and list the migrations applied."
        )

        @OptionGroup var global: GlobalOptions

        struct Report: Encodable {
            var database: String
            var integrity: [String]
            var migrations: [String]
            var ok: Bool
        }

        func run() async throws {
            try await reportingErrors {
                let health = try await global.withStore(readOnly: true) { try await $0.check() }
                let integrity = health.problems.isEmpty ? ["ok"] : health.problems
                let applied = health.migrations
                let ok = health.problems.isEmpty && applied == health.known
                if global.json {
                    printJSON(Report(database: global.databaseShown, integrity: integrity, migrations: applied, ok: ok))
                } else {
                    say("database    \(global.databaseShown)")
                    say("integrity   \(integrity.joined(separator: "; "))")
                    say("migrations  \(applied.joined(separator: ", "))")
                }
                if !ok { throw ExitCode(65) }
            }
        }
    }

    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the database if needed and apply the migrations this troupe carries."
        )

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            try await reportingErrors {
                let applied = try await global.withStore(mustExist: false) { try await $0.check() }.migrations
                if global.json {
                    printJSON(["database": global.databaseShown, "migrations": applied.joined(separator: ",")])
                } else {
                    say("troupe: \(global.databaseShown) is at \(applied.last ?? "no migration")")
                }
            }
        }
    }
}
