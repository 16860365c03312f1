import ArgumentParser
import Troupe
import TroupeSQLite

struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Delete old checkpoints (all but the last N per agent) and, optionally, old events.",
        discussion: """
            Examples:
              troupe prune --keep 3 --dry-run
              troupe prune --keep 1 --events-older-than 7d
            """
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Checkpoints to keep per agent.", valueName: "n")) var keep = 3
    @Option(help: ArgumentHelp("Delete events older than this: 12h, 7d, 30m.", valueName: "age")) var eventsOlderThan: String?
    @Flag(help: "Only say what would be deleted.") var dryRun = false

    func validate() throws {
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1 (an agent needs a checkpoint to resume from)") }
        if let text = eventsOlderThan, Self.milliseconds(text) == nil {
            throw ValidationError("--events-older-than takes an age from 0 to 10 years such as 30m, 12h or 7d, not '\(text)'")
        }
    }

    static func milliseconds(_ text: String) -> Int64? {
        let units: [(String, Double)] = [("m", 60), ("h", 3600), ("d", 86_400)]
        guard let age = try? DurationInput.parse(text, "--events-older-than", units: units, bare: nil) else { return nil }
        return DurationInput.milliseconds(age)
    }

    func run() async throws {
        try await reportingErrors {
            let before = eventsOlderThan.flatMap(Self.milliseconds).map { nowMilliseconds() - $0 }
            let report = try await global.withStore { try await $0.prune(keep: keep, eventsBefore: before, dryRun: dryRun) }
            if global.json { return printJSON(report) }
            let verb = dryRun ? "would delete" : "deleted"
            print("troupe: \(verb) \(report.checkpoints) checkpoints and \(report.events) events")
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
    }

    func run() async throws {
        let entries = Catalog.entries
        if global.json { return printJSON(entries.map { Listing(name: $0.name, summary: $0.summary, parameters: $0.parameters) }) }
        let width = (entries.map(\.name.count).max() ?? 0) + 2
        for entry in entries {
            print("\(entry.name.padded(to: width))\(entry.summary)")
            for parameter in entry.parameters {
                let fallback = parameter.defaultValue.isEmpty ? "empty" : parameter.defaultValue
                print("  --param \(parameter.name)=…  \(parameter.help) (default: \(fallback))")
            }
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
            abstract: "Run SQLite's integrity check and list the migrations applied."
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
                let (integrity, applied, known) = try await global.withStore { try await $0.check() }
                let ok = integrity == ["ok"] && applied == known
                if global.json {
                    printJSON(Report(database: global.databasePath, integrity: integrity, migrations: applied, ok: ok))
                } else {
                    print("database    \(global.databasePath)")
                    print("integrity   \(integrity.joined(separator: "; "))")
                    print("migrations  \(applied.joined(separator: ", "))")
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
                let (_, applied, _) = try await global.withStore(mustExist: false) { try await $0.check() }
                if global.json {
                    printJSON(["database": global.databasePath, "migrations": applied.joined(separator: ",")])
                } else {
                    print("troupe: \(global.databasePath) is at \(applied.last ?? "no migration")")
                }
            }
        }
    }
}
