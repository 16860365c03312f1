import ArgumentParser
import Foundation
import Logging
import Troupe

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Start a run of a blueprint and show its progress.",
        discussion: """
            On a terminal it prints the run's events and keeps a status line current (agents running, restarting \
            and failed, messages per second, checkpoints, the last error); otherwise it prints plain log lines. \
            Ctrl-C stops the run gracefully with a final checkpoint; a second Ctrl-C cancels it. The run can be \
            resumed later with `troupe resume RUN`.

            Examples:
              troupe run counting --param count=100000
              troupe run counting --detach
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The blueprint to run (see `troupe blueprints`).", completion: Completion.blueprints)
    var blueprint: String

    @Option(name: .customLong("param"), help: ArgumentHelp("A blueprint parameter.", valueName: "key=value"), completion: Completion.parameters)
    var parameters: [String] = []

    @Flag(
        help: "Start the run in a background process and return; its output goes to a log file next to the database. On a store shared by workers (postgres://), submit it for a worker to claim."
    )
    var detach = false

    @Option(help: ArgumentHelp("The durability of agents whose blueprint chooses none: ephemeral, checkpointed or durable.", valueName: "mode"))
    var durability: String?

    @Option(help: .hidden)
    var id: String?

    @OptionGroup var telemetry: TelemetryOptions

    @Flag(help: "Also log a 'checkpointed' event per checkpoint (off: `troupe checkpoints` lists them; they were most of a busy run's log).")
    var checkpointEvents = false

    func validate() throws {
        if let durability, Durability(durability) == nil {
            throw ValidationError("--durability must be ephemeral, checkpointed or durable, not '\(durability)'")
        }
        if let id { try Self.validateRunID(id) }
    }

    /// A run id names files (the detach log) and appears in listings: letters, digits, `.`, `_` and `-`, starting
    /// with a letter or digit, at most 64 characters.
    static func validateRunID(_ id: String) throws {
        let allowed = id.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        guard allowed, let first = id.utf8.first, first != UInt8(ascii: "."), first != UInt8(ascii: "-"),
            first != UInt8(ascii: "_"), id.utf8.count <= 64
        else {
            throw ValidationError(
                "--id takes 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, not '\(id)'"
            )
        }
    }

    func run() async throws {
        try await reportingErrors {
            let entry = try Catalog.entry(blueprint)
            // Every parameter is checked against its declared type and range here, before anything is started or
            // detached.
            let resolved = try entry.resolve(try parseParameters(parameters))
            let runID = id.map { RunID($0) } ?? RunID.random()
            if id != nil { try await refuseTaken(runID) }
            // Built only by the process that runs it (building starts the gallery's loopback servers): a detached
            // run's child builds it, and reports a failure to do so as a run that ended at once.
            if detach {
                // A store that workers share takes the run as a submission: it waits for a worker to claim it.
                if try global.location().scheme != "sqlite",
                    try await global.withStore(mustExist: false, { store in try await submit(store, entry, resolved, runID, durability) })
                {
                    return
                }
                return try await detachRun(runID)
            }
            let built = try entry.build(resolved)
            // The endpoint first: it sets up the process's metrics backend, which the run then records into.
            try await withTelemetry(telemetry) {
            try await global.withStore(mustExist: false) { store in
                let run = try Self.makeRun(
                    entry, blueprint: built, parameters: resolved, durability: durability.flatMap(Durability.init), id: runID, store: store,
                    global: global, checkpointEvents: checkpointEvents
                )
                if !global.json { say("troupe: run \(runID) of '\(entry.name)', database \(global.databaseShown)") }
                try await Self.finish(RunDriver(run: run, json: global.json).drive(), run: runID, json: global.json)
            }
            }
        }
    }

    /// Refuses an `--id` that names a run the database already has. `run` starts a new run; before, a second
    /// `run --id X` took the first run's records over and drove it again, even a completed one, under the new
    /// parameters.
    private func refuseTaken(_ runID: RunID) async throws {
        guard try global.location().exists else { return }
        // Opened as the run opens it: a shared store that no run has used yet is set up, not refused.
        let existing = try await global.withStore(mustExist: false) { store -> RunSummary? in
            do {
                return try await store.run(runID)
            } catch let error as TroupeError where error.code == .unknownRun {
                return nil
            }
        }
        guard let existing else { return }
        throw ValidationError(
            "--id \(runID): the database already has a run \(runID) (\(existing.blueprint), \(existing.status.rawValue)). "
                + "Pick another id, or continue that run with `troupe resume \(runID)`."
        )
    }

    /// A run of `entry`, recording its parameters and durability in the store so that a resume rebuilds it.
    /// Submits the run if `store` is shared by workers; `false` if it is not.
    private func submit(
        _ store: any OperatorStore, _ entry: BlueprintEntry, _ parameters: [String: String], _ id: RunID, _ durability: String?
    ) async throws -> Bool {
        guard let pool = store as? any WorkerPool else { return false }
        try await pool.submit(
            RunRecord(id: id, blueprint: entry.name, parameters: parameters, durability: durability.flatMap(Durability.init) ?? .checkpointed)
        )
        if global.json {
            printJSON(["run": id.rawValue, "status": RunStatus.pending.rawValue])
        } else {
            say("troupe: submitted run \(id) of '\(entry.name)'; it is pending until a worker claims it (`troupe workers`)")
            say("watch it with `troupe events \(id) --follow`, stop it with `troupe cancel \(id)`")
        }
        return true
    }

    static func makeRun(
        _ entry: BlueprintEntry,
        blueprint: Blueprint? = nil,
        parameters: [String: String],
        durability: Durability?,
        id: RunID,
        store: any OperatorStore,
        global: GlobalOptions,
        checkpointEvents: Bool = false
    ) throws -> Run {
        try Run(
            try blueprint ?? entry.build(parameters),
            id: id,
            parameters: parameters,
            configuration: Run.Configuration(
                store: store,
                logger: global.logger(),
                durability: durability ?? .checkpointed,
                services: Catalog.services,
                checkpointEvents: checkpointEvents
            )
        )
    }

    static func finish(_ ending: RunDriver.Ending, run: RunID, json: Bool) throws {
        let text: String
        switch ending {
        case .stopped: text = "stopped"
        case .cancelled: text = "cancelled by an operator"
        case .interrupted: text = "interrupted; stopped gracefully"
        case .terminated: text = "terminated (SIGTERM); stopped gracefully"
        case .completed: text = "completed"
        }
        if json {
            printJSON(["type": "end", "run": run.rawValue, "ending": text])
        } else if case .completed = ending {
            say("troupe: run \(run) completed: every agent finished")
        } else {
            say("troupe: run \(run) \(text); resume it with `troupe resume \(run)`")
        }
        if case .interrupted = ending { throw ExitCode(130) }
        if case .cancelled = ending { throw ExitCode(3) }
    }

    /// Starts `troupe run … --id RUN` as a background process and returns once that process drives the run (holds
    /// its lease), or fails with the process's own error and exit code if it ends first.
    private func detachRun(_ runID: RunID) async throws {
        var arguments = ["run", blueprint, "--id", runID.rawValue]
        for parameter in parameters { arguments += ["--param", parameter] }
        if let durability { arguments += ["--durability", durability] }
        arguments += telemetry.arguments
        if checkpointEvents { arguments.append("--checkpoint-events") }
        let started = try await Self.detach(runID, arguments: arguments, global: global)
        if global.json {
            printJSON(["run": runID.rawValue, "pid": String(started.pid), "log": started.log])
        } else {
            say("troupe: started run \(runID) in the background (pid \(started.pid)); log: \(started.log)")
            say("watch it with `troupe events \(runID) --follow`, stop it with `troupe cancel \(runID)`")
        }
    }

    /// Starts this binary with `arguments` (a `run` or a `resume` of `runID`) as a background process whose output
    /// goes to the run's log, appended, and returns once that process drives the run (holds its lease), or fails
    /// with the process's own error and exit code if it ends first.
    static func detach(_ runID: RunID, arguments: [String], global: GlobalOptions) async throws -> (pid: Int32, log: String) {
        // The database is created and brought up to date before the child starts (and before its log is), and this
        // process then only reads it. Before, this process opened it read-write as soon as the file appeared, so
        // both processes set up a fresh file at once; on a loaded machine one found the other's lock outlasting its
        // busy timeout, and the run ended before it began (exit 75). A database the run cannot use is refused here.
        await (try await global.openStore(mustExist: false)).close()
        let database = global.databasePath
        let location = try global.location()
        // The log goes next to a SQLite file; other stores' logs go to .troupe/ under the current directory.
        let directory =
            location.scheme == "sqlite" && !location.rest.hasPrefix("file:")
            ? (location.rest as NSString).deletingLastPathComponent : ".troupe"
        let logPath = (directory.isEmpty ? "." : directory) + "/\(runID).log"
        try FileManager.default.createDirectory(
            atPath: directory.isEmpty ? "." : directory,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        // The log is the run's: readable by its owner only, like the database next to it. A resume appends to it.
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil, attributes: [.posixPermissions: 0o600])
        }
        guard let log = FileHandle(forWritingAtPath: logPath) else {
            throw TroupeError(.storage, "cannot write the log file '\(logPath)'. Check the directory's permissions.")
        }
        try log.seekToEnd()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0])
        // The store reaches the child through its environment, not its arguments: a URL's password would show
        // in every user's process list.
        var environment = ProcessInfo.processInfo.environment
        environment["TROUPE_DATABASE"] = database
        process.environment = environment
        var arguments = arguments
        if let level = global.logLevel { arguments += ["--log-level", level.rawValue] }
        // The options that shape how it runs go with it (before, `--retain` given with `--detach` was dropped).
        arguments += ["--retain", String(global.retain), "--busy-timeout", String(global.busyTimeout)]
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        let store = try await global.openStore(mustExist: true, readOnly: true)
        do {
            try process.run()
        } catch {
            await store.close()
            throw error
        }
        try await waitUntilDriven(runID, by: process, log: logPath, store: store)
        return (process.processIdentifier, logPath)
    }

    /// Waits until `process` holds the run's lease, or ends having finished the run. If it fails first, its error
    /// (the log's `troupe:` lines) and its exit code become this command's; if it takes longer than 30 s, says so
    /// and returns.
    /// Closes `store`, which it reads the run from.
    private static func waitUntilDriven(_ runID: RunID, by process: Process, log logPath: String, store: any OperatorStore) async throws {
        enum Outcome { case driven, ended, slow }
        let deadline = ContinuousClock.now + .seconds(30)
        var outcome = Outcome.slow
        while ContinuousClock.now < deadline {
            if !process.isRunning {
                outcome = .ended
                break
            }
            if let summary = try? await store.run(runID), summary.isDriven,
                summary.owner?.pid == Int64(process.processIdentifier)
            {
                outcome = .driven
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        await store.close()
        switch outcome {
        case .driven:
            return
        case .ended where process.terminationStatus == 0:
            // It drove the run and finished it between two looks.
            return
        case .ended:
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            let reason = log.split(separator: "\n").last { $0.hasPrefix("troupe:") }.map(String.init)
            printError("troupe: the background run \(runID) ended at once (exit \(process.terminationStatus)):")
            printError(reason ?? "troupe: (no message; see \(logPath))")
            throw ExitCode(process.terminationStatus == 0 ? 1 : process.terminationStatus)
        case .slow:
            printError("troupe: the background run \(runID) has not taken its run within 30 s; see \(logPath)")
        }
    }
}
