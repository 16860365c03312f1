public import ArgumentParser
import Foundation
import Hummingbird
import Logging
import Troupe
import TroupeCLI
import UnixSignals

/// `troupe serve`: the operator console (web pages and a JSON API under `/api`) and Prometheus metrics on
/// `/metrics`, over any store.
public struct ServeCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the operator console: runs, live trees, timelines, events, agents and actions in a browser.",
        discussion: """
            Open the address it prints in a browser. The console shows every run of the database; one run's \
            supervision tree updates live (server-sent events), with a timeline of each agent's incarnations \
            (starts, crashes with their error, restarts, the gap of a process that died), the event log with a \
            live tail and filters, and sparklines of checkpoints and restarts. An agent's page shows its \
            checkpoints with a diff between any two, its dead letters, its last error and its state. Actions \
            (cancel, pause, unpause, resume, restart or stop an agent, requeue or purge dead letters, fork from a \
            checkpoint) go through the same control queue as the CLI's verbs.

            The pages use a JSON API under /api whose documents are the CLI's --json documents: /api/runs (`ps`), \
            /api/runs/RUN (`status`), /api/runs/RUN/tree (`tree`), /api/runs/RUN/events (`events`), \
            /api/runs/RUN/agents/AGENT (`describe`), /api/runs/RUN/agents/AGENT/checkpoints (`checkpoints`), \
            /api/runs/RUN/dead-letters (`dead-letters`); actions are POSTs (see the README). /metrics is \
            Prometheus text.

            It listens on 127.0.0.1 unless --host says otherwise; any other address needs a token (--token, or \
            TROUPE_TOKEN so that it does not show in the process list), sent as `Authorization: Bearer TOKEN` or \
            entered once in the login form (kept in a cookie). --read-only hides every action and refuses them. \
            Stop it with Ctrl-C or SIGTERM (exit 0).

            Examples:
              troupe serve
              TROUPE_TOKEN=$(openssl rand -hex 16) troupe serve --host 0.0.0.0 --port 8080 --read-only
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: ArgumentHelp("The address to listen on; anything but loopback needs a token.", valueName: "address"))
    var host = "127.0.0.1"

    @Option(help: ArgumentHelp("The port (0: any free port, printed when listening).", valueName: "port"))
    var port = 8080

    @Option(help: ArgumentHelp("The token a browser or script must present (default: $TROUPE_TOKEN).", valueName: "token"))
    var token: String?

    @Flag(help: "Show runs, but hide and refuse every action.")
    var readOnly = false

    public init() {}

    /// `--token`, else `TROUPE_TOKEN`; empty means none.
    var effectiveToken: String? {
        let value = token ?? ProcessInfo.processInfo.environment["TROUPE_TOKEN"]
        return value?.isEmpty == false ? value : nil
    }

    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    public func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port takes 0 to 65535, not \(port)") }
        if !Self.isLoopback(host), effectiveToken == nil {
            throw ValidationError(
                "--host \(host) would let anyone who reaches it steer your runs: give a token (--token, or "
                    + "TROUPE_TOKEN), or listen on 127.0.0.1"
            )
        }
        if let effectiveToken, effectiveToken.count < 12 {
            throw ValidationError("the token is too short to guess-proof a console: use at least 12 characters (openssl rand -hex 16)")
        }
    }

    public func run() async throws {
        do {
            let store = try await global.openStore(mustExist: readOnly, readOnly: readOnly)
            let metrics = ConsoleMetrics.shared
            let console = ConsoleServer(
                store: store, global: global, readOnly: readOnly, token: effectiveToken, metrics: metrics
            )
            var logger = Logger(label: "troupe.serve")
            logger.logLevel = global.logLevel ?? .error
            let shownHost = host.contains(":") ? "[\(host)]" : host
            let database = global.databaseShown
            let readOnly = readOnly
            let app = Application(
                router: console.router(),
                configuration: .init(address: .hostname(host, port: port), serverName: nil),
                onServerRunning: { channel in
                    let port = channel.localAddress?.port ?? 0
                    printLine(
                        "troupe: console on http://\(shownHost):\(port)/ (database \(database)\(readOnly ? ", read-only" : ""))"
                    )
                },
                logger: logger
            )
            do {
                try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
            } catch {
                await store.close()
                throw error
            }
            await store.close()
        } catch let error as ExitCode {
            throw error
        } catch {
            throw TroupeCommand.fail(error)
        }
    }
}

/// One line on standard output, flushed (a script waits for the address).
func printLine(_ line: String) {
    print(line)
    fflush(nil)
}
