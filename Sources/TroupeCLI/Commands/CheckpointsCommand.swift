import ArgumentParser
import Foundation
import Troupe

struct CheckpointsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkpoints",
        abstract: "List an agent's retained checkpoints: sequence, time, size.",
        discussion: """
            Fork a new run from any of them with `troupe fork RUN --from AGENT@SEQ`.

            Example:
              troupe checkpoints run-3f9c02ab counter
            """
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The run.", completion: Completion.runs) var run: String
    @Argument(help: "The agent.", completion: Completion.agents) var agent: String
    @Option(help: ArgumentHelp("Print the state saved in this checkpoint (JSON), or in the latest with `last`, instead of the list; with --json, in a document with its sequence, epoch and state version.", valueName: "seq"))
    var show: String?

    func validate() throws {
        if let show, show != "last", UInt64(show) == nil {
            throw ValidationError("--show takes a checkpoint's sequence number or `last`, not '\(show)'")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let run = try await global.resolvedRun(self.run)
            if let show {
                let state = try await global.withStore(readOnly: true) { store in
                    _ = try await store.run(RunID(run))
                    let all = try await store.checkpoints(of: AgentID(run: RunID(run), name: agent))
                    let wanted = show == "last" ? all.last : all.first { $0.sequence == UInt64(show) ?? 0 }
                    guard let checkpoint = wanted else {
                        throw TroupeError(
                            .unknownChild,
                            "run \(run) keeps no checkpoint #\(show) of '\(agent)'. `troupe checkpoints \(run) \(agent)` lists them."
                        )
                    }
                    return checkpoint
                }
                let text = String(decoding: state.state, as: UTF8.self)
                // The state alone, to pipe; with --json, in a document that also says which version wrote it.
                guard global.json else { return say(text) }
                let isJSON = (try? JSONSerialization.jsonObject(with: Data(state.state), options: .fragmentsAllowed)) != nil
                return say(
                    "{\"epoch\":\(state.epoch),\"sequence\":\(state.sequence),\"state\":\(isJSON ? text : jsonText(text)),"
                        + "\"stateVersion\":\(state.stateVersion)}"
                )
            }
            let records = try await global.withStore(readOnly: true) { store in
                _ = try await store.run(RunID(run))
                let id = AgentID(run: RunID(run), name: agent)
                guard try await store.agents(of: id.run).contains(where: { $0.name == agent }) else {
                    throw TroupeError(
                        .unknownChild,
                        "run \(run) has no checkpointed agent '\(agent)'. `troupe tree \(run)` shows its agents."
                    )
                }
                return try await store.checkpointHistory(of: id)
            }
            if global.json { return printJSON(records) }
            printTable(
                ["SEQ", "TIME", "EPOCH", "VERSION", "BYTES"],
                records.map { [String($0.sequence), timestamp($0.createdAt), String($0.epoch), String($0.stateVersion), String($0.bytes)] }
            )
        }
    }
}

struct ForkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fork",
        abstract: "Create a new run that starts from an older checkpoint; the original run is untouched.",
        discussion: """
            --from names a checkpoint as AGENT@SEQ (see `troupe checkpoints`). The fork is the run as it was right \
            after the commit that wrote it: that agent starts from exactly that checkpoint, every other agent from \
            its last checkpoint committed by then (an agent that had not checkpointed yet starts from scratch, as it \
            was then), and the durable messages in flight then (sent, not yet handled) are delivered again, in \
            order. If an agent's checkpoint from that moment was pruned, the fork is refused (exit 66): fork from a \
            later checkpoint, or run with a larger --retain. The fork is created stopped: start it with `troupe \
            resume NEW-RUN`.

            Example:
              troupe fork run-3f9c02ab --from counter@12
            """
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The run to fork.", completion: Completion.runs) var run: String
    @Option(help: ArgumentHelp("The checkpoint to start from.", valueName: "agent@seq")) var from: String

    func validate() throws {
        guard from.split(separator: "@").count == 2, UInt64(from.split(separator: "@")[1]) != nil else {
            throw ValidationError("--from takes AGENT@SEQ, such as counter@12, not '\(from)'")
        }
    }

    func run() async throws {
        try await reportingErrors {
            let run = try await global.resolvedRun(self.run)
            let parts = from.split(separator: "@")
            let agent = String(parts[0])
            let sequence = UInt64(parts[1])!
            let newRun = RunID.random()
            try await global.withStore { store in
                try await store.fork(AgentID(run: RunID(run), name: agent), sequence: sequence, as: newRun)
            }
            if global.json {
                printJSON(["run": newRun.rawValue, "from": run, "agent": agent, "sequence": String(sequence)])
            } else {
                say("troupe: forked \(newRun) from \(run) at checkpoint #\(sequence) of '\(agent)'; start it with `troupe resume \(newRun)`")
            }
        }
    }
}
