import ArgumentParser
import Troupe
import TroupeSQLite

struct PsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ps",
        abstract: "List the runs in the database, newest first.",
        discussion: """
            STATUS is running, paused, stopped, cancelled, failed, or crashed: a run whose process died without \
            stopping it (resume it with `troupe resume RUN`). OWNER is the process driving it, if it is alive.
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await reportingErrors {
            let runs = try await global.withStore { try await $0.runs() }
            if global.json { return printJSON(runs) }
            let now = nowMilliseconds()
            printTable(
                ["RUN", "BLUEPRINT", "STATUS", "AGE", "AGENTS", "RESTARTS", "OWNER"],
                runs.map { run in
                    [
                        run.id, run.blueprint, displayStatus(run), age(run.createdAt, now: now), String(run.agents),
                        String(run.restarts),
                        run.ownerAlive ? "pid \(run.ownerPID ?? 0) on \(run.ownerHost ?? "?")" : "-",
                    ]
                }
            )
        }
    }
}
