import ArgumentParser
import Troupe

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Continue a run whose process ended (crash, kill -9, reboot, Ctrl-C) from its checkpoints.",
        discussion: """
            Every agent starts from its last checkpoint; durable agents first get the messages the previous process \
            had accepted and not committed. Commands queued meanwhile (cancel, restart, pause) are applied at once. \
            A run that a live process still drives is refused, naming that process. --detach resumes it in a \
            background process (its output appended to the run's log) and returns once that process drives it; \
            --all resumes every crashed run so, after a reboot for instance.

            Examples:
              troupe resume run-3f9c02ab
              troupe resume --all
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The run to resume (see `troupe ps`).", completion: Completion.runs)
    var run: String?

    @Flag(help: "Resume in a background process and return once it drives the run.")
    var detach = false

    @Flag(help: "Resume every crashed run, each in a background process.")
    var all = false

    @OptionGroup var telemetry: TelemetryOptions

    @Flag(help: "Also log a 'checkpointed' event per checkpoint (off: `troupe checkpoints` lists them).")
    var checkpointEvents = false

    func validate() throws {
        if all, run != nil { throw ValidationError("name a run or pass --all, not both") }
        if !all, run == nil { throw ValidationError("name the run to resume (`troupe ps --status crashed` lists them), or pass --all") }
    }

    func run() async throws {
        try await reportingErrors {
            if all { return try await resumeAll() }
            let run = try await global.resolvedRun(self.run ?? "")
            if detach { return try await resumeDetached([RunID(run)]) }
            try await withTelemetry(telemetry) {
            try await global.withStore { store in
                let summary = try await store.run(RunID(run))
                let entry = try Catalog.entry(summary.blueprint)
                let resumed = try RunCommand.makeRun(
                    entry,
                    parameters: try entry.resolve(summary.parameters),
                    durability: summary.durability,
                    id: RunID(run),
                    store: store,
                    global: global,
                    checkpointEvents: checkpointEvents
                )
                if !global.json { say("troupe: resuming run \(run) of '\(entry.name)', database \(global.databaseShown)") }
                try await RunCommand.finish(RunDriver(run: resumed, json: global.json, paused: summary.status == .paused).drive(), run: RunID(run), json: global.json)
            }
            }
        }
    }

    /// Every crashed run, oldest first, each resumed in a background process.
    private func resumeAll() async throws {
        let crashed = try global.location().exists
            ? try await global.withStore(readOnly: true) { try await $0.runs() }.filter { $0.status == .crashed }.reversed().map(\.id)
            : []
        if crashed.isEmpty, !global.json { return say("troupe: no crashed run to resume") }
        try await resumeDetached(crashed)
    }

    /// Resumes `runs` in background processes, one each, and says where each went. A run that cannot be resumed
    /// (a live process took it meanwhile, its blueprint is unknown) is reported and the others go on; the exit code
    /// is then the first failure's.
    private func resumeDetached(_ runs: [RunID]) async throws {
        var started: [[String: String]] = []
        var failure: (any Error)?
        for run in runs {
            do {
                let (pid, log) = try await RunCommand.detach(
                    run, arguments: ["resume", run.rawValue] + telemetry.arguments + (checkpointEvents ? ["--checkpoint-events"] : []),
                    global: global
                )
                started.append(["run": run.rawValue, "pid": String(pid), "log": log])
                if !global.json { say("troupe: resumed run \(run) in the background (pid \(pid)); log: \(log)") }
            } catch {
                if runs.count == 1 { throw error }
                // A child that ended at once has said why (`RunCommand.detach`); other errors are said here.
                if !(error is ExitCode) { printError("troupe: run \(run) was not resumed: \(error)") }
                failure = failure ?? error
            }
        }
        if global.json {
            if all { printJSON(started) } else if let only = started.first { printJSON(only) }
        }
        if let failure { throw failure }
    }
}
