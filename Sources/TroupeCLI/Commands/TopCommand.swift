import ArgumentParser
import Foundation
import Glibc
import Troupe

/// `troupe top`: the runs and their rates, kept current on a terminal; one run's tree folded by supervisor.
struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "A live view of the runs (or one run's tree) with rates: events, checkpoints and restarts per second.",
        discussion: """
            Every --interval it reads the store and redraws, on a terminal, until Ctrl-C; otherwise (or with \
            --once) it prints one view, its rates measured over one interval. Runs that have not ended come first. \
            With a RUN, its tree follows, folded: each supervisor on one line with how many agents it has in each \
            status, then the agents that need a look (not running, restarted, a mailbox filling, an error), the \
            busiest first. Rates are the growth between two reads: EVENTS/s of the run's event log, CKPT/s of its \
            agents' checkpoints, RESTARTS of their restarts.

            Examples:
              troupe top
              troupe top run-3f9c02ab --interval 2
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "Show this run's tree too.", completion: Completion.runs)
    var run: String?

    @Option(help: ArgumentHelp("Seconds between two reads (0.2 to 3600).", valueName: "seconds"))
    var interval: Double = 1

    @Flag(help: "Print one view and exit (the default when standard output is not a terminal).")
    var once = false

    @Option(help: ArgumentHelp("Runs shown at most (those not ended first, then the newest).", valueName: "n"))
    var limit = 20

    func validate() throws {
        guard interval >= 0.2, interval <= 3600 else { throw ValidationError("--interval takes 0.2 to 3600 seconds, not \(interval)") }
        guard limit >= 1 else { throw ValidationError("--limit takes a number of runs from 1 up, not \(limit)") }
        if global.json { throw ValidationError("top is for eyes; for scripts use `troupe ps --json` and `troupe tree RUN --json`") }
    }

    /// What one read of a run gives.
    struct Sample {
        var summary: RunSummary
        var events: Int64
        var checkpoints: UInt64
        var restarts: Int
    }

    func run() async throws {
        try await reportingErrors {
            let terminal = isatty(1) == 1 && !once
            try await global.withStore(readOnly: true) { store in
                var named: RunID?
                if let run { named = RunID(try await resolveRun(run, in: store)) }
                var previous = try await sample(store, focus: named)
                var previousTime = ContinuousClock.now
                if !terminal { try await Task.sleep(for: .milliseconds(Int64(interval * 1000))) }
                while true {
                    let current = try await sample(store, focus: named)
                    let now = ContinuousClock.now
                    let elapsed = max(seconds(now - previousTime), 0.001)
                    var lines = frame(current, previous: previous, elapsed: elapsed)
                    if let named { lines += try await tree(named, in: store) }
                    if terminal {
                        // Home, clear, then the view cut to the terminal's height.
                        let height = max(5, Int(getenv("LINES").flatMap { Int32(String(cString: $0)) } ?? 40) - 1)
                        Swift.print("\u{1B}[H\u{1B}[2J" + lines.prefix(height).joined(separator: "\n"), terminator: "")
                        flushOutput()
                    } else {
                        for line in lines { say(line) }
                        return
                    }
                    previous = current
                    previousTime = now
                    try await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
                }
            }
        }
    }

    private func sample(_ store: any OperatorStore, focus: RunID?) async throws -> [RunID: Sample] {
        let runs = try await store.runs()
        var shown = runs.filter { !$0.status.hasEnded }
        shown += runs.filter { $0.status.hasEnded }
        shown = Array(shown.prefix(limit))
        if let focus, !shown.contains(where: { $0.id == focus }), let run = runs.first(where: { $0.id == focus }) { shown.append(run) }
        var samples: [RunID: Sample] = [:]
        for summary in shown {
            // An ended run does not move: its row says all the view shows, without reading its agents and log.
            if summary.status.hasEnded, summary.id != focus {
                samples[summary.id] = Sample(summary: summary, events: 0, checkpoints: 0, restarts: summary.restarts)
                continue
            }
            let agents = try await store.agents(of: summary.id)
            let last = try await store.lastEvents(of: summary.id, count: 1, agent: nil).first?.sequence ?? 0
            samples[summary.id] = Sample(
                summary: summary, events: last, checkpoints: agents.reduce(0) { $0 + ($1.lastCheckpoint ?? 0) },
                restarts: agents.reduce(0) { $0 + $1.restarts }
            )
        }
        return samples
    }

    private func frame(_ current: [RunID: Sample], previous: [RunID: Sample], elapsed: Double) -> [String] {
        let now = nowMilliseconds()
        let ordered = current.values.sorted { a, b in
            a.summary.status.hasEnded != b.summary.status.hasEnded
                ? !a.summary.status.hasEnded : a.summary.createdAt > b.summary.createdAt
        }
        let live = ordered.filter { !$0.summary.status.hasEnded }.count
        func rate(_ value: Double) -> String { value < 0.05 ? "0" : value < 10 ? String(format: "%.1f", value) : String(Int(value.rounded())) }
        var rows: [[String]] = []
        for sample in ordered {
            let before = previous[sample.summary.id]
            let events = before.map { rate(Double(sample.events - $0.events) / elapsed) } ?? "-"
            let checkpoints = before.map { rate(Double(sample.checkpoints &- $0.checkpoints) / elapsed) } ?? "-"
            let restarts = before.map { String(sample.restarts - $0.restarts) } ?? "-"
            rows.append([
                sample.summary.id.rawValue, sample.summary.blueprint, sample.summary.status.rawValue,
                age(sample.summary.createdAt, now: now), String(sample.summary.agents), String(sample.restarts), restarts,
                events, checkpoints, ownerText(sample.summary.owner),
            ])
        }
        var lines = [
            "troupe top · \(global.databaseShown) · \(timestamp(now)) · \(live) of \(ordered.count) runs not ended · "
                + "rates over \(String(format: "%.1f", elapsed))s",
            "",
        ]
        lines += tableLines(["RUN", "BLUEPRINT", "STATUS", "AGE", "AGENTS", "RESTARTS", "+RESTARTS", "EVENTS/s", "CKPT/s", "OWNER"], rows)
        return lines
    }

    /// One run's tree, folded: a line per supervisor with its agents counted by status, then the agents worth a
    /// look.
    private func tree(_ run: RunID, in store: any OperatorStore) async throws -> [String] {
        let nodes = try await Documents.tree(of: run, in: store)
        var lines = ["", "\(run) tree"]
        var notable: [Documents.TreeNodeReport] = []
        func walk(_ nodes: [Documents.TreeNodeReport], depth: Int, parent: String) {
            let agents = nodes.filter { $0.type != "Supervisor" }
            if !agents.isEmpty {
                let counts = Dictionary(grouping: agents, by: \.status).map { "\($0.value.count) \($0.key)" }.sorted()
                let mailbox = agents.reduce(0) { $0 + $1.mailboxDepth }
                let restarts = agents.reduce(0) { $0 + $1.restarts }
                lines.append(
                    String(repeating: "  ", count: depth) + "\(parent): \(agents.count) agent\(agents.count == 1 ? "" : "s") · "
                        + counts.joined(separator: ", ") + " · \(restarts) restart\(restarts == 1 ? "" : "s") · \(mailbox) waiting"
                )
            }
            for node in nodes {
                if node.type == "Supervisor" {
                    walk(node.children, depth: depth + 1, parent: node.name)
                } else if node.status != "running" || node.restarts > 0 || node.mailboxDepth > 0 || node.lastError != nil {
                    notable.append(node)
                }
            }
        }
        walk(nodes, depth: 0, parent: "(root)")
        if !notable.isEmpty {
            lines.append("")
            let busiest = notable.sorted { ($0.restarts, $0.mailboxDepth) > ($1.restarts, $1.mailboxDepth) }.prefix(15)
            lines += tableLines(
                ["AGENT", "STATUS", "RESTARTS", "MAILBOX", "LAST ERROR"],
                busiest.map { [$0.name, $0.status + ($0.passivated ? " (passivated)" : ""), String($0.restarts), String($0.mailboxDepth), String(($0.lastError ?? "").prefix(60))] }
            )
            if notable.count > busiest.count { lines.append("… \(notable.count - busiest.count) more agents worth a look (`troupe tree \(run)`)") }
        }
        return lines
    }
}
