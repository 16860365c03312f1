import ArgumentParser
import FoundationEssentials
import Troupe

struct PsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps",
        abstract: "List the runs in the database, newest first.",
        discussion: """
            STATUS is pending, running, paused, stopped, completed, cancelled, failed, or crashed: a run whose \
            process died without stopping it (resume it with `troupe resume RUN`). ENDED is how long ago the run \
            ended, DURATION how long it lasted (or has lasted so far). STATUS says how many agents wait (for a \
            signal or a durable timer) when any does, and --json lists them under `waiting`. LEASE is the run's lease epoch: it grows each \
            time a process (or a worker, on PostgreSQL) takes the run, and every write it makes carries it, so a \
            former owner's late writes are refused. OWNER is the process driving it, if it is alive, and on \
            PostgreSQL its worker. With --json, each run as a JSON object; `status` there is the same word as in \
            the table. A database that does not exist yet has no runs. `ps` and the other verbs that only look \
            (status, tree, events, checkpoints, dead-letters list, db check) open the database read-only: they \
            never create, migrate or write it, so they work on a read-only file system.

            Every verb that takes a RUN also takes the beginning of its id, when exactly one run's id begins so.

            Examples:
              troupe ps --status crashed -q | xargs -n1 troupe resume --detach
              troupe ps --blueprint counting --since 1h --limit 5
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(
        name: .customLong("status"),
        help: ArgumentHelp("Only runs with this status (repeat it, or separate statuses with commas).", valueName: "status")
    )
    var statuses: [String] = []

    @Option(name: .customLong("blueprint"), help: ArgumentHelp("Only runs of this blueprint (repeat it for several).", valueName: "name"))
    var blueprints: [String] = []

    @Option(help: ArgumentHelp("Only runs started within this long: 90s, 10m, 2h, 7d.", valueName: "age"))
    var since: String?

    @Option(help: ArgumentHelp("At most this many runs (the newest).", valueName: "n"))
    var limit: Int?

    @Flag(name: [.customShort("q"), .customLong("quiet")], help: "Print only the runs' ids, one per line.")
    var quiet = false

    /// The statuses `--status` names, each checked.
    func wantedStatuses() throws -> Set<RunStatus>? {
        let words = commaSeparated(statuses)
        guard !words.isEmpty else { return nil }
        var wanted: Set<RunStatus> = []
        for word in words {
            guard let status = RunStatus(rawValue: word.lowercased()) else {
                throw ValidationError(
                    "--status '\(word)' is not a run status; use one of "
                        + RunStatus.allCases.map(\.rawValue).joined(separator: ", ")
                )
            }
            wanted.insert(status)
        }
        return wanted
    }

    /// How far back `--since` reaches, in milliseconds.
    func sinceMilliseconds() throws -> Int64? {
        guard let since else { return nil }
        do {
            return try DurationInput.age(since, "--since")
        } catch {
            throw ValidationError(error.description)
        }
    }

    func validate() throws {
        _ = try wantedStatuses()
        _ = try sinceMilliseconds()
        if let limit, limit < 1 { throw ValidationError("--limit takes a number of runs from 1 up, not \(limit)") }
        if quiet, global.json { throw ValidationError("--quiet prints ids and --json prints documents: choose one") }
    }

    func run() async throws {
        try await reportingErrors {
            // No database yet: no runs (as `docker ps` says), not an error. Verbs that name a run still answer 66.
            let all = try global.location().exists ? try await global.withStore(readOnly: true) { try await $0.runs() } : []
            let now = nowMilliseconds()
            let statuses = try wantedStatuses()
            let earliest = try sinceMilliseconds().map { now - $0 }
            var runs = all.filter { run in
                (statuses?.contains(run.status) ?? true) && (blueprints.isEmpty || blueprints.contains(run.blueprint))
                    && (earliest.map { milliseconds(run.createdAt) >= $0 } ?? true)
            }
            if let limit { runs = Array(runs.prefix(limit)) }
            if quiet { return runs.forEach { say($0.id.rawValue) } }
            // What the agents of runs that have not ended wait for (signals, durable timers), from their snapshots:
            // one read per such run, none for the ended ones.
            let open: Set<RunStatus> = [.running, .paused, .crashed, .stopped]
            let waits: [RunID: [WaitingAgent]] = runs.contains(where: { open.contains($0.status) })
                ? try await global.withStore(readOnly: true) { store in
                    var waits: [RunID: [WaitingAgent]] = [:]
                    for run in runs where open.contains(run.status) {
                        guard let snapshot = try await store.treeSnapshot(of: run.id) else { continue }
                        let waiting = WaitingAgent.all(in: snapshot.nodes)
                        if !waiting.isEmpty { waits[run.id] = waiting }
                    }
                    return waits
                } : [:]
            if global.json { return printJSON(runs.map { PsRow(run: $0, waiting: waits[$0.id]) }) }
            printTable(
                ["RUN", "BLUEPRINT", "STATUS", "AGE", "ENDED", "DURATION", "AGENTS", "RESTARTS", "LEASE", "OWNER"],
                runs.map { run in
                    let ended = run.endedAt.map { milliseconds($0) }
                    return [
                        run.id.rawValue, run.blueprint,
                        run.status.rawValue + (waits[run.id].map { ", \($0.count) waiting" } ?? ""), age(run.createdAt, now: now),
                        ended.map { age($0, now: now) } ?? "-", age(milliseconds(run.createdAt), now: ended ?? now),
                        String(run.agents), String(run.restarts), run.lease.map(String.init) ?? "-", ownerText(run.owner),
                    ]
                }
            )
        }
    }
}

/// An agent that waits, in `troupe ps --json`'s `waiting`.
struct WaitingAgent: Encodable {
    var agent: String
    var what: String
    var since: Date
    var until: Date?

    /// The waiting agents of a tree, in its order.
    static func all(in nodes: [TreeNode]) -> [WaitingAgent] {
        nodes.flatMap { node in
            (node.waiting.map { [WaitingAgent(agent: node.name, what: $0.what, since: $0.since, until: $0.until)] } ?? [])
                + all(in: node.children)
        }
    }
}

/// A run as `troupe ps --json` prints it: its summary, and what its agents wait for when any does.
struct PsRow: Encodable {
    var run: RunSummary
    var waiting: [WaitingAgent]?

    private enum Key: String, CodingKey { case waiting }

    func encode(to encoder: any Encoder) throws {
        try run.encode(to: encoder)
        var container = encoder.container(keyedBy: Key.self)
        try container.encodeIfPresent(waiting, forKey: .waiting)
    }
}
