import ArgumentParser
import Foundation
import Troupe

struct ResultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "result",
        abstract: "Print what a run produced: the state its blueprint names as its result.",
        discussion: """
            A blueprint may declare which agent's last checkpoint is the run's result (`troupe blueprints` shows \
            it); `result` prints that state as JSON, pretty-printed (or, with --json, in a document with the run's \
            status and the checkpoint's number). A run that has not completed prints its result so far and says so \
            on standard error. Reads only.

            Example:
              troupe result run-3f9c02ab
            """
    )

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The run.", completion: Completion.runs) var run: String

    func run() async throws {
        try await reportingErrors {
            let (summary, agent, checkpoint) = try await global.withStore(readOnly: true) { store in
                let run = RunID(try await resolveRun(run, in: store))
                let summary = try await store.run(run)
                let entry = try Catalog.entry(summary.blueprint)
                guard let agent = entry.result else {
                    throw MissingInput(
                        description: "blueprint '\(entry.name)' declares no result. `troupe describe \(run) AGENT` shows "
                            + "an agent's state (`troupe tree \(run)` lists them)."
                    )
                }
                guard let checkpoint = try await store.checkpoints(of: AgentID(run: run, name: agent)).last else {
                    throw MissingInput(
                        description: "run \(run) has no result yet: its '\(agent)' has not checkpointed (status \(summary.status.rawValue))."
                    )
                }
                return (summary, agent, checkpoint)
            }
            guard let text = String(validating: checkpoint.state, as: UTF8.self),
                let value = try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
            else {
                throw TroupeError(
                    .corruptCheckpoint,
                    "the result of run \(summary.id) (checkpoint #\(checkpoint.sequence) of '\(agent)') is not JSON; "
                        + "`troupe checkpoints \(summary.id) \(agent) --show \(checkpoint.sequence)` shows it as stored."
                )
            }
            if summary.status != .completed {
                printError("troupe: run \(summary.id) is \(summary.status.rawValue), not completed: this is its result so far (checkpoint #\(checkpoint.sequence) of '\(agent)')")
            }
            if global.json {
                // The run's document, with the stored state in it as it is (as every --json document: sorted keys).
                let document: [String: Any] = [
                    "run": summary.id.rawValue, "status": summary.status.rawValue, "agent": agent,
                    "checkpoint": checkpoint.sequence, "result": value,
                ]
                let data = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])
                return say(String(decoding: data, as: UTF8.self))
            }
            say(prettyJSON(value) ?? text)
        }
    }
}

/// A decoded JSON value as people read it (`describe`'s state, `result`): indented, keys sorted, slashes bare.
func prettyJSON(_ value: Any) -> String? {
    let options: JSONSerialization.WritingOptions = [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]
    return (try? JSONSerialization.data(withJSONObject: value, options: options)).map { String(decoding: $0, as: UTF8.self) }
}
