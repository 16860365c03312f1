import ArgumentParser
import Foundation
import Troupe

struct DescribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "Everything about one agent of a run: status and since when, restarts, last error, mailbox, state.",
        discussion: """
            Its type and durability; its status, since when, its incarnation and epoch; how many times it was \
            restarted and its history (its events other than checkpoints, the latest 20 with --history's default); \
            its last error in full with the time it happened; its mailbox (messages waiting, from the run's latest \
            tree snapshot, and durable messages stored for it); and its last checkpoint, with the state \
            pretty-printed when it is JSON. Reads only.

            Example:
              troupe describe run-3f9c02ab counter
            """
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The run.") var run: String
    @Argument(help: "The agent.") var agent: String
    @Option(help: ArgumentHelp("How many of its latest events to show (0 for none).", valueName: "n"))
    var history = 20

    func validate() throws {
        guard history >= 0 else { throw ValidationError("--history takes a number of events from 0 up, not \(history)") }
    }

    /// What `describe` prints, and its `--json` document.
    struct Report: Encodable {
        var run: String
        var blueprint: String
        var runStatus: String
        var agent: String
        var type: String
        var durability: String
        var status: String
        var since: Date?
        var incarnation: UInt64?
        var epoch: UInt64
        var restarts: Int
        var lastError: String?
        var lastErrorAt: Date?
        var mailbox: Int?
        var mailboxAt: Date?
        var storedMessages: Int
        var checkpoint: UInt64?
        var checkpointAt: Date?
        /// The last checkpoint's state as text (JSON pretty-printed), when it is UTF-8.
        var state: String?
        var stateBytes: Int?
        var history: [EventRecord]
        var earlierEvents: Int
    }

    func run() async throws {
        try await reportingErrors {
            let report = try await global.withStore(readOnly: true) { store in
                let run = RunID(try await resolveRun(run, in: store))
                let summary = try await store.run(run)
                let agents = try await store.agents(of: run)
                guard let row = agents.first(where: { $0.name == agent }) else {
                    throw MissingInput(
                        description: "run \(run) has no agent '\(agent)'. Its agents: "
                            + "\(agents.isEmpty ? "none yet" : agents.map(\.name).sorted().joined(separator: ", "))."
                    )
                }
                // Its events, checkpoints aside (they are in its checkpoint history).
                var events: [EventRecord] = []
                var after: Int64 = 0
                while true {
                    let page = try await store.events(of: run, since: after, agent: agent, limit: 5000)
                    events += page.filter { $0.event != "checkpointed" }
                    guard page.count == 5000, let last = page.last else { break }
                    after = last.sequence
                }
                let node = try await store.treeSnapshot(of: run).flatMap { snapshot in
                    Self.find(agent, in: snapshot.nodes).map { ($0, snapshot.at) }
                }
                let checkpoint = try await store.checkpoints(of: AgentID(run: run, name: agent)).last
                let failure = events.last { ["crashed", "escalated", "quarantined", "killed", "abandoned"].contains($0.event) }
                let shown = history == 0 ? [] : Array(events.suffix(history))
                return Report(
                    run: run.rawValue, blueprint: summary.blueprint, runStatus: summary.status.rawValue, agent: agent,
                    type: row.type, durability: row.durability.description, status: row.status.rawValue,
                    since: events.last?.time, incarnation: node?.0.incarnation ?? events.last?.incarnation, epoch: row.epoch,
                    restarts: row.restarts, lastError: row.lastError, lastErrorAt: row.lastError == nil ? nil : failure?.time,
                    mailbox: node?.0.mailboxDepth, mailboxAt: node?.1, storedMessages: row.pendingMessages,
                    checkpoint: checkpoint?.sequence, checkpointAt: row.lastCheckpointAt,
                    state: checkpoint.flatMap { Self.text(of: $0.state) }, stateBytes: checkpoint?.state.count,
                    history: shown, earlierEvents: events.count - shown.count
                )
            }
            if global.json { return printJSON(report) }
            print(report)
        }
    }

    static func find(_ name: String, in nodes: [TreeNode]) -> TreeNode? {
        for node in nodes {
            if node.name == name { return node }
            if let found = find(name, in: node.children) { return found }
        }
        return nil
    }

    /// A state as people read it: JSON pretty-printed with sorted keys, other UTF-8 text as it is, else nothing.
    static func text(of state: [UInt8]) -> String? {
        if let value = try? JSONSerialization.jsonObject(with: Data(state), options: [.fragmentsAllowed]), let pretty = prettyJSON(value) {
            return pretty
        }
        return String(validating: state, as: UTF8.self)
    }

    private func print(_ report: Report) {
        let now = nowMilliseconds()
        func when(_ date: Date?) -> String { date.map { "\(timestamp($0)) (\(age($0, now: now)) ago)" } ?? "-" }
        var lines: [(String, String)] = [
            ("agent", report.agent),
            ("run", "\(report.run) (\(report.blueprint), \(report.runStatus))"),
            ("type", report.type),
            ("durability", report.durability),
            ("status", report.status + (report.since.map { " since \(when($0))" } ?? "")),
            ("incarnation", report.incarnation.map { "#\($0), epoch \(report.epoch)" } ?? "epoch \(report.epoch)"),
            ("restarts", String(report.restarts)),
            (
                "mailbox",
                (report.mailbox.map { "\($0) waiting (snapshot \(age(report.mailboxAt ?? Date(), now: now)) old)" } ?? "no snapshot")
                    + ", \(report.storedMessages) durable stored"
            ),
            (
                "checkpoint",
                report.checkpoint.map { "#\($0), \(when(report.checkpointAt)), \(report.stateBytes ?? 0) bytes" } ?? "none"
            ),
            ("last error", report.lastError == nil ? "none" : when(report.lastErrorAt)),
        ]
        if let error = report.lastError { lines.append(("", error)) }
        let width = lines.map(\.0.count).max() ?? 0
        for (key, value) in lines {
            for (index, line) in value.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                say((index == 0 ? key : "").padding(toLength: width + 2, withPad: " ", startingAt: 0) + line)
            }
        }
        if !report.history.isEmpty {
            say("history" + (report.earlierEvents > 0 ? " (latest \(report.history.count); \(report.earlierEvents) earlier)" : ""))
            for event in report.history {
                say("  \(timestamp(event.time))  #\(event.incarnation)  \(event.event)\(event.detail.isEmpty ? "" : "  " + event.detail)")
            }
        }
        if let state = report.state {
            say("state")
            for line in state.split(separator: "\n", omittingEmptySubsequences: false) { say("  " + line) }
        } else if let bytes = report.stateBytes {
            say("state  \(bytes) bytes, not text (`troupe checkpoints \(report.run) \(report.agent) --show last`)")
        }
    }
}
