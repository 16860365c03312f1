import ArgumentParser
import Troupe

struct PsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps",
        abstract: "List the runs in the database, newest first.",
        discussion: """
            STATUS is running, paused, stopped, completed, cancelled, failed, or crashed: a run whose process died \
            without stopping it (resume it with `troupe resume RUN`). LEASE is the run's lease epoch: it grows each time \
            a process (or a worker, on PostgreSQL) takes the run, and every write it makes carries it, so a former \
            owner's late writes are refused. OWNER is the process driving it, if it is alive, and on PostgreSQL its \
            worker. With --json, each run as a JSON object; `status` there is the same word as in the table. A \
            database that does not exist yet has no runs. `ps` and the other verbs that only look (status, tree, \
            events, checkpoints, dead-letters list, db check) open the database read-only: they never create, \
            migrate or write it, so they work on a read-only file system.
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await reportingErrors {
            // No database yet: no runs (as `docker ps` says), not an error. Verbs that name a run still answer 66.
            let runs = try global.location().exists ? try await global.withStore(readOnly: true) { try await $0.runs() } : []
            if global.json { return printJSON(runs) }
            let now = nowMilliseconds()
            printTable(
                ["RUN", "BLUEPRINT", "STATUS", "AGE", "AGENTS", "RESTARTS", "LEASE", "OWNER"],
                runs.map { run in
                    [
                        run.id.rawValue, run.blueprint, run.status.rawValue, age(run.createdAt, now: now),
                        String(run.agents), String(run.restarts), run.lease.map(String.init) ?? "-", ownerText(run.owner),
                    ]
                }
            )
        }
    }
}
