import ArgumentParser
import FoundationEssentials
import Glibc
import Logging
import Synchronization
import Troupe
import UnixSignals

/// Drives one run in the foreground for `troupe run` and `troupe resume`: starts it, shows its progress, and stops
/// it on Ctrl-C (a second Ctrl-C cancels). Operators' commands and the tree snapshot are the engine's
/// (``RunController``), as for a run embedded in any process.
struct RunDriver {
    let run: Run
    let json: Bool
    /// Whether the run comes back paused (a resume of a paused run): the status line says so from the start.
    var paused = false

    /// How the run ended, for the exit code.
    enum Ending {
        case stopped, cancelled, interrupted, terminated, completed
    }

    func drive() async throws -> Ending {
        let display = Display(json: json, interactive: isatty(1) == 1 && !json, run: run.id.rawValue)
        display.paused(paused)
        let run = self.run
        // Completion is checked once the tree is up.
        let treeStarted = Latch<Void>()
        let root = run.blueprint.name
        run.addEventSink { event in
            if event.name == root, event.incarnation == 0, case .started = event.kind { treeStarted.open(with: ()) }
            display.event(event)
        }
        let flags = Flags()
        // Each applied command is printed as the run's `command` event (who asked, why, what came of it).
        run.addCommandObserver { command in
            if case .cancel = command.action, command.result?.outcome == .applied {
                flags.cancelledByOperator.store(true, ordering: .relaxed)
            }
            if command.result?.outcome == .applied {
                if case .pause = command.action { display.paused(true) }
                if case .unpause = command.action { display.paused(false) }
            }
        }
        let outcome: Result<Void, any Error> = await withTaskGroup(of: Result<Void, any Error>?.self) { group in
            let runTask = Task { try await run.run() }
            group.addTask {
                await runTask.result.map { _ in () }
            }
            group.addTask {
                // Ctrl-C or SIGTERM: stop gracefully (final checkpoints); again: cancel.
                for await signal in await UnixSignalsSequence(trapping: .sigint, .sigterm) {
                    if flags.interrupts.add(1, ordering: .relaxed).newValue == 1 {
                        // A service manager stops with SIGTERM and reads a non-zero status as a failure: a graceful
                        // stop it asked for ends with 0. Ctrl-C (SIGINT) ends with 130, as shells expect.
                        flags.terminated.store(signal == .sigterm, ordering: .relaxed)
                        display.note("stopping gracefully (final checkpoints); press Ctrl-C again to cancel")
                        run.shutdown()
                    } else {
                        display.note("cancelling")
                        runTask.cancel()
                    }
                }
                return nil
            }
            group.addTask {
                if await Self.completeWhenDone(run, started: treeStarted) { flags.completed.store(true, ordering: .relaxed) }
                return nil
            }
            group.addTask {
                var last = run.messagesHandled
                var lastTime = ContinuousClock.now
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    display.tick()
                    guard display.interactive else { continue }
                    let children = await run.supervisor.children()
                    let handled = run.messagesHandled
                    let now = ContinuousClock.now
                    display.progress(children: children, rate: Double(handled - last) / max(seconds(lastTime.duration(to: now)), 0.001))
                    last = handled
                    lastTime = now
                }
                return nil
            }
            var outcome: Result<Void, any Error> = .success(())
            if let first = await group.next(), let result = first { outcome = result }
            group.cancelAll()
            return outcome
        }
        display.finish()
        if case .failure(let error) = outcome, !(error is CancellationError) { throw error }
        if flags.interrupts.load(ordering: .relaxed) > 0 {
            return flags.terminated.load(ordering: .relaxed) ? .terminated : .interrupted
        }
        if flags.completed.load(ordering: .relaxed) { return .completed }
        return flags.cancelledByOperator.load(ordering: .relaxed) ? .cancelled : .stopped
    }
}

extension RunDriver {
    /// Completes `run` once every agent has exited for good (transient or temporary ones that returned): returns
    /// `true` then, `false` if cancelled first. Looked at when a lifecycle event moved the tree (every 100 ms at
    /// most), and every 2 s in case the supervisor recorded an exit just after the look: an idle tree costs one walk
    /// every 2 s, not ten a second.
    ///
    /// - Parameter started: Opened when the run's root supervisor has started.
    static func completeWhenDone(_ run: Run, started: Latch<Void>) async -> Bool {
        guard await started.wait() != nil else { return false }
        var seen: UInt64 = .max
        var lastLook = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            let version = run.treeVersion
            guard version != seen || ContinuousClock.now - lastLook >= .seconds(2) else { continue }
            seen = version
            lastLook = ContinuousClock.now
            if ChildInfo.allEnded(await run.supervisor.children()) {
                run.complete()
                return true
            }
        }
        return false
    }
}

/// What the driver's tasks share.
final class Flags: Sendable {
    /// Ctrl-C (or SIGTERM) presses so far.
    let interrupts = Atomic<Int>(0)
    /// Whether the first of them was SIGTERM.
    let terminated = Atomic<Bool>(false)
    /// Whether an operator's `troupe cancel` ended the run.
    let cancelledByOperator = Atomic<Bool>(false)
    /// Whether every agent exited for good.
    let completed = Atomic<Bool>(false)
}

/// What a foreground run prints: events as lines (or JSON lines), and on a terminal a status line kept current.
final class Display: Sendable {
    private struct State {
        var statuses: [String: AgentStatus] = [:]
        var checkpoints = 0
        var lastError: String?
        var statusLine = ""
        var paused = false
        var fold: Fold?
    }

    /// A burst of events of one kind (a large tree starting or stopping): the first ``Fold/shown`` are printed, the
    /// rest counted and said in one line when the burst ends (another kind of event, a second without one, or
    /// the end).
    struct Fold {
        static let shown = 10
        static let foldable: Set<String> = ["started", "stopped", "exited", "cancelled"]
        var kind: String
        var printed = 1
        var hidden = 0
        var last: ContinuousClock.Instant
    }

    private let state = Mutex(State())
    private let json: Bool
    let interactive: Bool
    private let start = ContinuousClock.now
    private let run: String
    private let colour: Bool

    /// Where lines go instead of standard output (tests).
    private let sink: (@Sendable (String) -> Void)?

    init(json: Bool, interactive: Bool, run: String = "", sink: (@Sendable (String) -> Void)? = nil) {
        self.sink = sink
        self.json = json
        self.interactive = interactive
        self.run = run
        self.colour = interactive && StatusLine.colourWanted
    }

    /// Whether an operator paused the run (shown in the status line).
    func paused(_ paused: Bool) {
        state.withLock { $0.paused = paused }
    }

    func event(_ event: Event) {
        let record = EventRecord(event)
        state.withLock { state in
            if let status = event.kind.impliedStatus { state.statuses[event.name] = status }
            if let error = event.kind.error { state.lastError = "\(event.name): \(error)" }
            if case .checkpointed = event.kind {
                state.checkpoints += 1
                return
            }
            if json {
                line(jsonText(EventLine(record)))
            } else {
                let now = ContinuousClock.now
                if var fold = state.fold, fold.kind == record.event, now - fold.last < .seconds(1) {
                    fold.last = now
                    if fold.printed >= Fold.shown {
                        fold.hidden += 1
                        state.fold = fold
                        return
                    }
                    fold.printed += 1
                    state.fold = fold
                } else {
                    endFold(&state)
                    if Fold.foldable.contains(record.event) { state.fold = Fold(kind: record.event, last: now) }
                }
                let line = "\(timestamp(record.time))  \("\(event.name)#\(event.incarnation)".padded(to: 16)) \((record.event + " ").padded(to: 12))\(record.detail)"
                write(line.trimmingTrailingSpaces(), statusLine: state.statusLine)
            }
            flushOutput()
        }
    }

    /// Says how many events of the burst were not printed, and ends it.
    private func endFold(_ state: inout State) {
        guard let fold = state.fold else { return }
        state.fold = nil
        guard fold.hidden > 0 else { return }
        let more = "… \(fold.hidden) more '\(fold.kind)' events (`troupe events \(run) --kind \(fold.kind)` lists them all)"
        write(more, statusLine: state.statusLine)
    }

    func note(_ text: String) {
        state.withLock { state in
            if json {
                line(jsonText(["type": "note", "text": text]))
            } else {
                write("troupe: \(text)", statusLine: state.statusLine)
            }
            flushOutput()
        }
    }

    /// Ends a burst that has been quiet for a second.
    func tick() {
        state.withLock { state in
            if let fold = state.fold, ContinuousClock.now - fold.last >= .seconds(1) { endFold(&state) }
        }
    }

    func progress(children: [ChildInfo], rate: Double) {
        state.withLock { state in
            let leaves = ChildInfo.agents(of: children)
            let status = StatusLine(
                run: run, elapsed: ContinuousClock.now - start,
                running: leaves.filter { $0.status == .running }.count,
                restarting: leaves.filter { $0.status == .restarting }.count,
                failed: state.statuses.values.filter { $0 == .failed || $0 == .quarantined }.count,
                restarts: leaves.reduce(0) { $0 + $1.restarts }, rate: rate, checkpoints: state.checkpoints,
                paused: state.paused, lastError: state.lastError
            )
            let line = status.text(width: StatusLine.width, colour: colour)
            state.statusLine = line
            Swift.print("\r\u{1B}[K" + line, terminator: "")
            flushOutput()
        }
    }

    func finish() {
        state.withLock { state in
            endFold(&state)
            if interactive, !state.statusLine.isEmpty { Swift.print("") }
            state.statusLine = ""
        }
        flushOutput()
    }

    private func write(_ line: String, statusLine: String) {
        if interactive, !statusLine.isEmpty {
            Swift.print("\r\u{1B}[K" + line)
            Swift.print(statusLine, terminator: "")
        } else {
            self.line(line)
        }
    }

    private func line(_ text: String) {
        if let sink { sink(text) } else { say(text) }
    }
}
