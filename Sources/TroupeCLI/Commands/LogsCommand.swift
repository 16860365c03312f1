import ArgumentParser
import Logging
import Troupe

struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print the log lines a run's agents wrote (context.logger), whatever --log-level the run had.",
        discussion: """
            A run keeps its agents' lines at info and above (Run.Configuration.storedLogLevel) in its event log, \
            about the newest 10,000 of them (older ones are deleted as new ones come), and deletes them with the \
            run. `--follow` keeps printing new lines until the run has ended, or Ctrl-C; --tail N prints the last N \
            first. With --json, each line as `troupe events --json` prints it (event "log", detail "LEVEL message").

            Examples:
              troupe logs run-3f9c02ab
              troupe logs run-3f9c02ab monitor --follow --tail 20
              troupe logs run-3f9c02ab --since 10m --level warning
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The run.", completion: Completion.runs)
    var run: String

    @Argument(help: "Only this agent's lines.", completion: Completion.agents)
    var agent: String?

    @Flag(name: [.customShort("f"), .customLong("follow")], help: "Keep printing new lines as they are written.")
    var follow = false

    @Option(help: ArgumentHelp("Print only the last N lines (then follow, with --follow).", valueName: "n"))
    var tail: Int?

    @Option(help: ArgumentHelp("Print only lines after this sequence number, or within this long: 90s, 10m, 2h, 7d.", valueName: "seq-or-age"))
    var since: String?

    @Option(help: ArgumentHelp("The least severe lines to print: trace, debug, info, notice, warning, error, critical.", valueName: "level"))
    var level: Logger.Level = .trace

    var reader: EventReader {
        var reader = EventReader(global: global, run: run, follow: follow, since: since, agent: agent, kinds: ["log"], tail: tail, logs: true)
        reader.level = level
        return reader
    }

    func validate() throws { try reader.validate() }

    func run() async throws { try await reader.run() }
}
