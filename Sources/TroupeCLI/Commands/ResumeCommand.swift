import ArgumentParser
import Troupe

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Continue a run whose process ended (crash, kill -9, reboot, Ctrl-C) from its checkpoints.",
        discussion: """
            Every agent starts from its last checkpoint; durable agents first get the messages the previous process \
            had accepted and not committed. Commands queued meanwhile (cancel, restart, pause) are applied at once. \
            A run that a live process still drives is refused, naming that process.

            Example:
              troupe resume run-3f9c02ab
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The run to resume (see `troupe ps`).")
    var run: String

    func run() async throws {
        try await reportingErrors {
            try await global.withStore { store in
                let summary = try await store.run(RunID(run))
                let entry = try Catalog.entry(summary.blueprint)
                let resumed = try RunCommand.makeRun(
                    entry,
                    parameters: try entry.resolve(summary.parameters),
                    durability: summary.durability,
                    id: RunID(run),
                    store: store,
                    global: global
                )
                if !global.json { say("troupe: resuming run \(run) of '\(entry.name)', database \(global.databaseShown)") }
                try await RunCommand.finish(RunDriver(run: resumed, json: global.json).drive(), run: RunID(run), json: global.json)
            }
        }
    }
}
