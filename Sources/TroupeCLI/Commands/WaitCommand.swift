import ArgumentParser
import Troupe

/// `troupe wait RUN`: blocks until a run has ended, for scripts; its exit code says how it ended.
struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait until a run has ended; the exit code says how (for scripts).",
        discussion: """
            A run has ended when it completed, was stopped, was cancelled or failed. A run that is pending, running, \
            paused or crashed (its process died; a resume or a worker takes it on) has not: `wait` keeps waiting. \
            Exit codes: 0 the run ended as --for asks; 3 it was cancelled (and --for asked something else); 1 it \
            ended otherwise; 75 --timeout passed first (safe to wait again); 66 no such run. --for completed (the \
            default), stopped (stopped or cancelled), failed, or any.

            Examples:
              troupe run counting --detach && troupe wait run-3f9c02ab --timeout 600
              troupe wait run-3f9c02ab --for any --json
            """
    )

    enum Outcome: String, ExpressibleByArgument, CaseIterable {
        case completed, stopped, failed, any

        func matches(_ status: RunStatus) -> Bool {
            switch self {
            case .completed: status == .completed
            case .stopped: status == .stopped || status == .cancelled
            case .failed: status == .failed
            case .any: true
            }
        }
    }

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The run.", completion: Completion.runs)
    var run: String

    @Option(name: .customLong("for"), help: ArgumentHelp("The ending waited for: completed, stopped, failed or any.", valueName: "ending"))
    var outcome: Outcome = .completed

    @Option(help: ArgumentHelp("Seconds to wait at most (0 to 10 years); without it, as long as it takes.", valueName: "seconds"))
    var timeout: Double?

    func validate() throws {
        guard let timeout else { return }
        do {
            _ = try DurationInput.seconds(timeout, "--timeout")
        } catch {
            throw ValidationError(error.description)
        }
    }

    struct Report: Encodable {
        var run: String
        var status: String
        var matched: Bool
        var error: String?
    }

    func run() async throws {
        try await reportingErrors {
            let run = try await global.resolvedRun(self.run)
            let limit = try timeout.map { try DurationInput.seconds($0, "--timeout") }
            let summary = try await global.withStore(readOnly: true) { store in
                let id = RunID(run)
                // Woken by the store's hints (watched before the first read, so that an ending in between is not
                // missed) and twice a second, since not every store logs an event with every ending.
                let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
                let hinted = Task { for await _ in store.eventHints(of: id) { wake.yield() } }
                let ticking = Task {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(500))
                        wake.yield()
                    }
                }
                defer {
                    hinted.cancel()
                    ticking.cancel()
                }
                var woken = wakes.makeAsyncIterator()
                let deadline = limit.map { ContinuousClock.now + $0 }
                while true {
                    let summary = try await store.run(id)
                    if summary.status.hasEnded { return summary }
                    if let deadline, ContinuousClock.now >= deadline {
                        throw TroupeError(
                            .busy,
                            "run \(run) has not ended after \(timeout ?? 0)s (it is \(summary.status.rawValue)); wait again, or see `troupe status \(run)`."
                        )
                    }
                    _ = await woken.next()
                }
            }
            let matched = outcome.matches(summary.status)
            if global.json {
                printJSON(Report(run: run, status: summary.status.rawValue, matched: matched, error: summary.error))
            } else {
                say("troupe: run \(run) \(summary.status.rawValue)\(summary.error.map { ": \($0)" } ?? "")")
            }
            guard matched else { throw ExitCode(summary.status == .cancelled ? 3 : 1) }
        }
    }
}
