import ArgumentParser
import FoundationEssentials
import Troupe

/// Queues an operator's command for a run, checks the agent exists, and waits (briefly) for a live run to apply it.
func sendCommand(_ global: GlobalOptions, run: String, action: OperatorCommand.Action, reason: String?) async throws {
    let verb = action.verb
    let agent = action.agent
    // Applying a command (a graceful stop) can take a while on a busy machine: wait up to 30 s for the live
    // process's answer (Ctrl-C leaves the command queued).
    let origin = Documents.origin(reason: reason)
    let report = try await global.withStore { try await Documents.command(action, for: run, in: $0, origin: origin) }
    if global.json {
        var document = ["command": report.command, "status": report.status, "run": report.run]
        document["outcome"] = report.outcome
        document["result"] = report.result
        printJSON(document)
    } else if report.status == "applied" {
        let result = report.outcome == OperatorCommand.Result.Outcome.applied.rawValue
            ? report.result ?? "" : "\(report.outcome ?? ""): \(report.result ?? "")"
        say("troupe: \(verb)\(agent.map { " " + $0 } ?? ""): \(result)")
    } else if report.live {
        say("troupe: '\(verb)' is queued; the run's process has not applied it yet (see `troupe status \(report.run)`)")
    } else {
        say("troupe: run \(report.run) has no live process; '\(verb)' is queued and will be applied by `troupe resume \(report.run)`")
    }
    if report.status == "applied", report.outcome != OperatorCommand.Result.Outcome.applied.rawValue { throw ExitCode.failure }
}

struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Stop a run (or one of its agents) gracefully, from any terminal.",
        discussion: """
            A run's agents finish their message in hand and write a final checkpoint; after --grace seconds the \
            rest is cancelled. One agent is stopped through its shutdown ladder and stays stopped until \
            `troupe restart`. Against a run with no live process the command is queued for its next resume.

            Examples:
              troupe cancel run-3f9c02ab
              troupe cancel run-3f9c02ab relay
            """
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Why: recorded with the command and in the run's event log.", valueName: "text")) var reason: String?
    @Argument(help: "The run.", completion: Completion.runs) var run: String
    @Argument(help: "An agent of the run; without it, the whole run.", completion: Completion.agents) var agent: String?
    @Option(help: ArgumentHelp("Seconds to wait for a graceful stop before cancelling (0 to 10 years).", valueName: "seconds"))
    var grace: Double = 10

    func validate() throws {
        do {
            _ = try DurationInput.seconds(grace, "--grace")
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() async throws {
        try await reportingErrors {
            var action = OperatorCommand.Action.cancel(grace: try DurationInput.seconds(grace, "--grace"))
            if let agent { action = .stop(agent: agent) }
            try await sendCommand(global, run: run, action: action, reason: reason)
        }
    }
}

struct RestartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Restart one agent of a run from its last checkpoint (or from scratch with --fresh).",
        discussion: """
            A running agent is stopped gracefully first. --fresh starts it from its initial state (its checkpoints \
            stay in the database): the way back for an agent quarantined by a checkpoint it cannot read.

            Example:
              troupe restart run-3f9c02ab counter
            """
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Why: recorded with the command and in the run's event log.", valueName: "text")) var reason: String?
    @Argument(help: "The run.", completion: Completion.runs) var run: String
    @Argument(help: "The agent.", completion: Completion.agents) var agent: String
    @Flag(help: "Start from the initial state instead of the last checkpoint.") var fresh = false

    func run() async throws {
        try await reportingErrors {
            try await sendCommand(global, run: run, action: .restart(agent: agent, fresh: fresh), reason: reason)
        }
    }
}

struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send",
        abstract: "Send a message to an agent of a run, from outside the run.",
        discussion: """
            MESSAGE is the JSON encoding of one of the agent's message values, as Swift's Codable writes an enum: \
            {"work":{}} for `case work`, {"value":{"_0":5}} for `case value(Int)`. The run's process decodes it \
            as the agent's message type (an error names the type and what did not decode) and delivers it: a \
            durable agent's message is stored before the command counts as applied, so it survives a crash; \
            another agent's is delivered if its mailbox has room and refused if not. A pool's name sends to its \
            next member. Against a run with no live process the message is queued for its next resume; on \
            PostgreSQL the worker that owns the run receives it, wherever it runs.

            Examples:
              troupe send run-3f9c02ab worker-7 '{"work":{}}'
              troupe send run-3f9c02ab counter '{"value":{"_0":5}}'
            """
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Why: recorded with the command and in the run's event log.", valueName: "text")) var reason: String?
    @Argument(help: "The run.", completion: Completion.runs) var run: String
    @Argument(help: "The agent, or a pool.", completion: Completion.agents) var agent: String
    @Argument(help: "The message, as JSON.") var message: String

    func run() async throws {
        try await reportingErrors {
            try OperatorInput.requireJSON(message, "the message", example: "troupe send RUN AGENT '{\"work\":{}}'")
            try await sendCommand(global, run: run, action: .send(agent: agent, message: message), reason: reason)
        }
    }
}

struct SignalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signal",
        abstract: "Send a named signal to an agent waiting for it (an approval, a decision), from outside the run.",
        discussion: """
            VALUE is JSON that the agent decodes as what it waits for: `context.signal("approve", as: Decision.self)` \
            reads {"approve":true} as `struct Decision: Codable { var approve: Bool }`. A checkpointed or durable \
            agent's signal is stored before the command counts as applied, and waits for the agent across crashes, \
            restarts and resumes until a unit of work takes it, once. Signals of one name are taken oldest first. \
            Against a run with no live process the signal is queued for its next resume. `troupe tree` shows what \
            each agent waits for.

            Examples:
              troupe signal run-3f9c02ab writer approve '{"approve":true}'
              troupe signal run-3f9c02ab writer approve '{"approve":false,"note":"too long"}' --reason "review"
            """
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Why: recorded with the command and in the run's event log.", valueName: "text")) var reason: String?
    @Argument(help: "The run.", completion: Completion.runs) var run: String
    @Argument(help: "The agent.", completion: Completion.agents) var agent: String
    @Argument(help: "The signal's name: letters, digits, '.', '_' and '-'.") var name: String
    @Argument(help: "The signal's value, as JSON.") var value: String

    func validate() throws {
        if let problem = OperatorInput.signalNameProblem(name) { throw ValidationError(problem) }
    }

    func run() async throws {
        try await reportingErrors {
            try OperatorInput.requireJSON(value, "the value", example: "troupe signal RUN AGENT NAME '{\"approve\":true}'")
            try await sendCommand(global, run: run, action: .signal(agent: agent, name: name, value: value), reason: reason)
        }
    }
}

struct PauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause",
        abstract: "Stop every agent of a live run gracefully, keeping the run and its process, until unpause."
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Why: recorded with the command and in the run's event log.", valueName: "text")) var reason: String?
    @Argument(help: "The run.", completion: Completion.runs) var run: String

    func run() async throws {
        try await reportingErrors { try await sendCommand(global, run: run, action: .pause, reason: reason) }
    }
}

struct UnpauseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpause",
        abstract: "Start again the agents that pause stopped, from their checkpoints."
    )

    @OptionGroup var global: GlobalOptions
    @Option(help: ArgumentHelp("Why: recorded with the command and in the run's event log.", valueName: "text")) var reason: String?
    @Argument(help: "The run.", completion: Completion.runs) var run: String

    func run() async throws {
        try await reportingErrors { try await sendCommand(global, run: run, action: .unpause, reason: reason) }
    }
}
