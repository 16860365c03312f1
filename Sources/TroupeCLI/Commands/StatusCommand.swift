import ArgumentParser
import Troupe

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show one run: its status, owner, parameters, agents, and the commands sent to it."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The run.", completion: Completion.runs)
    var run: String

    func run() async throws {
        try await reportingErrors {
            let report = try await global.withStore(readOnly: true) { try await Documents.status(of: run, in: $0) }
            if global.json { return printJSON(report) }
            let summary = report.run
            say("run         \(summary.id)")
            say("blueprint   \(summary.blueprint)")
            say("status      \(summary.status.rawValue)")
            if let durability = summary.durability { say("durability  \(durability)") }
            say("created     \(timestamp(summary.createdAt)) (\(age(summary.createdAt)) ago)")
            if let ended = summary.endedAt { say("ended       \(timestamp(ended))") }
            say("owner       \(summary.isDriven ? ownerText(summary.owner) : "none")")
            if let lease = summary.lease { say("lease       epoch \(lease)") }
            let parameters = summary.parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
            say("parameters  \(parameters.isEmpty ? "none" : parameters.joined(separator: " "))")
            say("agents      \(report.agents.count) (\(report.agents.filter { $0.status == .failed || $0.status == .quarantined }.count) failed), \(summary.restarts) restarts")
            say("dead letters \(report.deadLetters)")
            if let error = summary.error { say("note        \(error)") }
            let pending = report.commands.filter { $0.appliedAt == nil }
            if !pending.isEmpty {
                say("pending     " + pending.map { "\($0.action.verb)\($0.action.agent.map { " " + $0 } ?? "")" }.joined(separator: ", "))
            }
        }
    }
}
