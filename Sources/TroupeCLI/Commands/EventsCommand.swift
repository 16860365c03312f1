import ArgumentParser
import Troupe

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Print a run's durable event log.",
        discussion: """
            Each event has a sequence number (SEQ); `--since SEQ` prints only later ones, so a reader can stop and \
            carry on where it was. `--follow` keeps printing new events as they are written, until the run has \
            ended and everything was printed, or Ctrl-C.

            Examples:
              troupe events run-3f9c02ab --agent counter
              troupe events run-3f9c02ab --follow --since 120 --json
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The run.")
    var run: String

    @Flag(help: "Keep printing new events as they happen.")
    var follow = false

    @Option(help: ArgumentHelp("Print only events after this sequence number.", valueName: "seq"))
    var since: Int64 = 0

    @Option(help: ArgumentHelp("Print only this agent's events.", valueName: "name"))
    var agent: String?

    func run() async throws {
        try await reportingErrors {
            let run = try await global.resolvedRun(self.run)
            try await global.withStore(readOnly: true) { store in
                let id = RunID(run)
                _ = try await store.run(id)
                if let agent {
                    let names = try await store.agents(of: id).map(\.name)
                    guard names.contains(agent) else {
                        throw MissingInput(
                            description: "run \(id) has no agent '\(agent)'. Its agents: "
                                + "\(names.isEmpty ? "none yet" : names.joined(separator: ", "))."
                        )
                    }
                }
                // Watched before the first read, so that nothing logged in between is missed.
                var hints = (follow ? store.eventHints(of: id) : AsyncStream { $0.finish() }).makeAsyncIterator()
                var last = since
                var printedHeader = false
                while true {
                    let events = try await store.events(of: id, since: last, agent: agent, limit: 10_000)
                    if global.json {
                        for event in events { say(jsonText(EventLine(event))) }
                    } else {
                        if !printedHeader, !events.isEmpty {
                            say(["SEQ".padded(to: 7), "TIME".padded(to: 24), "AGENT".padded(to: 16), "EVENT".padded(to: 13), "DETAIL"].joined(separator: " ").trimmingTrailingSpaces())
                            printedHeader = true
                        }
                        for event in events {
                            let line = [
                                String(event.sequence).padded(to: 7), timestamp(event.time).padded(to: 24),
                                "\(event.agent)#\(event.incarnation)".padded(to: 16), event.event.padded(to: 13), event.detail,
                            ].joined(separator: " ")
                            say(line.trimmingTrailingSpaces())
                        }
                    }
                    flushOutput()
                    last = events.last?.sequence ?? last
                    if events.count == 10_000 { continue }
                    guard follow else { return }
                    if events.isEmpty, !(try await store.run(id).isDriven) { return }
                    // Until the store hints that new events may be there (on PostgreSQL, a notification from the
                    // writer's commit; elsewhere every 200 ms).
                    if await hints.next() == nil { try await Task.sleep(for: .milliseconds(200)) }
                }
            }
        }
    }
}
