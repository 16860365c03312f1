public import ArgumentParser
import Glibc
package import Logging
import Troupe
import Synchronization
import TroupeSQLite

/// The `troupe` command: run and steer Troupe runs.
///
/// A library type, so that a package with its own agents can build its own operator binary:
///
/// ```swift
/// import TroupeCLI
/// await TroupeCommand.main()
/// ```
public struct TroupeCommand: AsyncParsableCommand {
    private static let extraVerbs = Mutex<[any ParsableCommand.Type]>([])

    public static var configuration: CommandConfiguration {
        CommandConfiguration(
        commandName: "troupe",
        abstract: "Run and steer durable multi-agent runs.",
        discussion: """
            Troupe runs supervision trees of agents that checkpoint their state and resume after a crash.

            Results go to standard output; diagnostics go to standard error.

            Exit codes:
              0   success
              1   any other failure
              3   a foreground run or resume that an operator cancelled
              64  usage error (unknown option, bad argument)
              65  bad data (malformed parameter, undecodable checkpoint)
              66  not found (unknown run, agent, blueprint, checkpoint or dead letter)
              75  temporary failure (database busy); safe to retry
              130 a foreground run stopped by Ctrl-C (SIGINT); SIGTERM's graceful stop exits 0
            """,
        version: TroupeRelease.version,
        subcommands: [
            RunCommand.self, PsCommand.self, TopCommand.self, TreeCommand.self, StatusCommand.self, DescribeCommand.self, ResultCommand.self, EventsCommand.self,
            CancelCommand.self, RestartCommand.self, SendCommand.self, SignalCommand.self, WaitCommand.self, PauseCommand.self, UnpauseCommand.self, ResumeCommand.self,
            LogsCommand.self, CheckpointsCommand.self, ForkCommand.self, DeadLettersCommand.self, PruneCommand.self, RmCommand.self,
            BlueprintsCommand.self, InitCommand.self, DbCommand.self, WorkerCommand.self, WorkersCommand.self, DrainCommand.self,
            VersionCommand.self,
        ] + extraVerbs.withLock { $0 }
    )
    }

    public init() {}

    /// Runs the `troupe` command with your blueprints: a package that defines agents builds its own operator
    /// binary with every verb.
    ///
    /// ```swift
    /// @main enum Operator {
    ///     static func main() async { await TroupeCommand.main(blueprints: [orders, billing]) }
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - blueprints: What `troupe run NAME` can start.
    ///   - services: Shared clients handed to every run (`Run.Configuration.services`), such as an HTTP client.
    ///   - verbs: More subcommands, listed after the built-in ones.
    public static func main(
        blueprints: [BlueprintEntry],
        services: [any Sendable] = [],
        verbs: [any ParsableCommand.Type] = []
    ) async {
        Catalog.install(blueprints, services: services)
        extraVerbs.withLock { $0 = verbs }
        for verb in verbs { (verb as? any InstallsIntoTroupe.Type)?.install() }
        let arguments = Array(CommandLine.arguments.dropFirst())
        // A shell asking for completions passes its words through as they are.
        if arguments.first == "---completion" { return await main(arguments) }
        let names = configuration.subcommands.compactMap { $0.configuration.commandName }
        if let suggestion = Arguments.suggestion(for: arguments, verbs: names) {
            printError(suggestion)
            Self.exit(withError: ExitCode(64))
        }
        await main(Arguments.arranged(arguments))
    }

    /// The exit code for an error that ended a command, by the table in `troupe --help`.
    package static func exitCode(for error: any Error) -> ExitCode {
        if error is ValidationError { return ExitCode(64) }
        if error is MissingInput { return ExitCode(66) }
        guard let error = error as? TroupeError else { return .failure }
        switch error.code {
        case .invalidSpec, .corruptCheckpoint, .wrongMessageType, .quarantined, .notADatabase, .futureSchema,
            .schemaMismatch:
            return ExitCode(65)
        case .unknownAddress, .unknownChild, .unknownRun, .unknownBlueprint: return ExitCode(66)
        case .busy: return ExitCode(75)
        default: return .failure
        }
    }

    /// Prints `error` to standard error and turns it into the matching exit code.
    package static func fail(_ error: any Error) -> ExitCode {
        printError("troupe: \(error)")
        return exitCode(for: error)
    }
}

/// Something the operator named does not exist (an agent of a run, a dead letter): exit code 66.
package struct MissingInput: Error, CustomStringConvertible {
    package let description: String

    package init(description: String) {
        self.description = description
    }
}

/// The release this binary was built from.
public enum TroupeRelease {
    /// The version string printed by `troupe version`.
    public static let version = "0.1.0"
}

/// Options every subcommand shares.
package struct GlobalOptions: ParsableArguments {
    package init() {}

    @Option(
        help: ArgumentHelp(
            "The store: a SQLite file, or a PostgreSQL URL (postgres://USER@HOST/DATABASE). Default: $TROUPE_DATABASE, "
                + "else \(SQLiteStore.defaultPath) under the current directory.",
            valueName: "path-or-url"
        )
    )
    package var database: String?

    @Flag(help: "Print results as JSON (one document, or JSON lines for streams).")
    package var json = false

    @Option(help: ArgumentHelp("Seconds to wait for another process's database lock before giving up (exit 75); 0 to 10 years.", valueName: "seconds"))
    package var busyTimeout: Double = 5

    @Option(help: ArgumentHelp("Checkpoints a run keeps per agent, at least (older ones are pruned as it goes). Keep more to fork from further back.", valueName: "n"))
    package var retain = 3

    package func validate() throws {
        guard retain >= 1 else { throw ValidationError("--retain must be at least 1 (an agent needs a checkpoint to resume from)") }
        do {
            _ = try DurationInput.seconds(busyTimeout, "--busy-timeout")
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The logger for runs started by this command: standard error, at `--log-level` (errors by default).
    func logger() -> Logger {
        var logger = Logger(label: "troupe")
        logger.logLevel = logLevel ?? .error
        return logger
    }

    /// ``databasePath`` as messages show it: a URL without its password (`postgres://user:secret@host/db` →
    /// `postgres://user@host/db`).
    package var databaseShown: String { StoreLocation.withoutPassword(databasePath) }

    /// The database to use: `--database`, else `TROUPE_DATABASE`, else the default file.
    package var databasePath: String {
        if let database { return database }
        if let value = getenv("TROUPE_DATABASE"), value.pointee != 0 { return String(cString: value) }
        return SQLiteStore.defaultPath
    }

    @Option(
        help: ArgumentHelp(
            "The least severe log messages to print on standard error: trace, debug, info, notice, warning, error, critical.",
            valueName: "level"
        )
    )
    package var logLevel: Logger.Level?
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
