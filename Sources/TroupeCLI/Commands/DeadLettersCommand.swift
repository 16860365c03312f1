import ArgumentParser
import Troupe

struct DeadLettersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "List a run's dead letters, or requeue or purge them.",
        discussion: """
            A dead letter is a message that crashed its agent too many times, or whose agent no longer exists.

            Examples:
              troupe dead-letters run-3f9c02ab
              troupe dead-letters run-3f9c02ab requeue --id 4
              troupe dead-letters run-3f9c02ab purge
            """
    )

    enum Action: String, ExpressibleByArgument, CaseIterable {
        case list, requeue, purge
    }

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The run.", completion: Completion.runs) var run: String
    @Argument(help: "list (the default), requeue (back to their agents), or purge (delete).") var action: Action = .list
    @Option(help: ArgumentHelp("Why (requeue of a live run): recorded with the command and in the run's event log.", valueName: "text"))
    var reason: String?
    @Option(name: .customLong("id"), help: ArgumentHelp("Only this dead letter (repeatable); all of them by default.", valueName: "id"))
    var ids: [Int64] = []

    func run() async throws {
        try await reportingErrors {
            let run = try await global.resolvedRun(self.run)
            let id = RunID(run)
            if action != .list, !ids.isEmpty {
                // Every id named must be a dead letter of this run: a typo is a usage problem, not "0 requeued".
                let known = Set(try await global.withStore(readOnly: true) { try await $0.deadLetters(of: id) }.map(\.id))
                let missing = ids.filter { !known.contains($0) }
                guard missing.isEmpty else {
                    throw MissingInput(
                        description: "run \(id) has no dead letter \(missing.map { "#\($0)" }.joined(separator: ", ")). "
                            + "`troupe dead-letters \(id)` lists them; nothing was changed."
                    )
                }
            }
            switch action {
            case .list:
                let letters = try await global.withStore(readOnly: true) { store in
                    _ = try await store.run(id)
                    return try await store.deadLetters(of: id)
                }
                if global.json { return printJSON(letters) }
                printTable(
                    ["ID", "AGENT", "FAILURES", "TIME", "BYTES", "ERROR"],
                    letters.map { [String($0.id), $0.agent, String($0.failures), timestamp($0.createdAt), String($0.bytes), String($0.error.prefix(100))] }
                )
            case .requeue:
                let live = try await global.withStore(readOnly: true) { try await $0.run(id).isDriven }
                if live {
                    // The driving process must load them into the agents' mailboxes: ask it.
                    return try await sendCommand(global, run: run, action: .requeue(ids: ids.isEmpty ? nil : ids), reason: reason)
                }
                let agents = try await global.withStore { try await $0.requeueDeadLetters(of: id, ids: ids.isEmpty ? nil : ids) }
                if global.json { return printJSON(["requeued": agents.count]) }
                say("troupe: requeued \(agents.count) messages; `troupe resume \(run)` delivers them")
            case .purge:
                let count = try await global.withStore { store in
                    _ = try await store.run(id)
                    return try await store.purgeDeadLetters(of: id, ids: ids.isEmpty ? nil : ids)
                }
                if global.json { return printJSON(["purged": count]) }
                say("troupe: purged \(count) dead letters")
            }
        }
    }
}
