public import ArgumentParser
import Glibc
import Logging
import Troupe
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
    public static let configuration = CommandConfiguration(
        commandName: "troupe",
        abstract: "Run and steer durable multi-agent runs.",
        discussion: """
            Troupe runs supervision trees of agents that checkpoint their state and resume after a crash.

            Results go to standard output; diagnostics go to standard error.

            Exit codes:
              0   success
              1   any other failure
              64  usage error (unknown option, bad argument)
              65  bad data (malformed parameter, undecodable checkpoint)
              66  not found (unknown run, agent, blueprint or checkpoint)
              75  temporary failure (database busy); safe to retry
            """,
        version: TroupeRelease.version,
        subcommands: [DemoCommand.self, VersionCommand.self]
    )

    public init() {}

    /// The exit code for an error that ended a command, by the table in `troupe --help`.
    static func exitCode(for error: any Error) -> ExitCode {
        guard let error = error as? TroupeError else { return .failure }
        switch error.code {
        case .invalidSpec, .corruptCheckpoint, .wrongMessageType, .quarantined, .notADatabase, .futureSchema,
            .schemaMismatch:
            return ExitCode(65)
        case .unknownAddress, .unknownChild, .unknownRun: return ExitCode(66)
        case .busy: return ExitCode(75)
        default: return .failure
        }
    }

    /// Prints `error` to standard error and turns it into the matching exit code.
    static func fail(_ error: any Error) -> ExitCode {
        printError("troupe: \(error)")
        return exitCode(for: error)
    }
}

/// The release this binary was built from.
public enum TroupeRelease {
    /// The version string printed by `troupe version`.
    public static let version = "0.1.0"
}

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "The database file. Default: $TROUPE_DATABASE, else \(SQLiteStore.defaultPath) under the current directory.",
            valueName: "path"
        )
    )
    var database: String?

    /// The database to use: `--database`, else `TROUPE_DATABASE`, else the default file.
    var databasePath: String {
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
    var logLevel: Logger.Level?
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
