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
    @Argument(help: "The run.", completion: Completion.runs) var run: String
    @Argument(help: "The agent.", completion: Completion.agents) var agent: String
    @Option(help: ArgumentHelp("How many of its latest events to show (0 for none).", valueName: "n"))
    var history = 20

    func validate() throws {
        guard history >= 0 else { throw ValidationError("--history takes a number of events from 0 up, not \(history)") }
    }

    func run() async throws {
        try await reportingErrors {
            let report = try await global.withStore(readOnly: true) { store in
                try await Documents.describe(agent, of: run, history: history, in: store)
            }
            if global.json { return printJSON(report) }
            print(report)
        }
    }

    private func print(_ report: Documents.AgentReport) {
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
                "waiting",
                report.waiting.map { "for \($0.what) since \(when($0.since))" + ($0.until.map { ", until \(timestamp($0))" } ?? "") }
                    ?? "no"
            ),
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
