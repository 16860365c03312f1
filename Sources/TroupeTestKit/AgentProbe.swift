public import Troupe

/// Watches a run's lifecycle events (started, exited, restarting, escalated, dead-lettered, stopped, abandoned,
/// checkpointed) and lets a test wait for them, instead of sleeping.
///
/// Create it before the run starts: it listens through a synchronous event sink, so it misses nothing.
///
/// ```swift
/// let probe = AgentProbe(run)
/// // …start the run…
/// try await probe.wait(for: "worker", .started, count: 2)   // started, crashed, and started again
/// ```
public final class AgentProbe: Sendable {
    /// The kinds of event a probe can wait for.
    public enum Kind: Sendable, Hashable {
        case started, exited, failed, restarting, escalated, deadLettered, stopped, killed, abandoned, checkpointed, quarantined

        func matches(_ kind: Event.Kind) -> Bool {
            switch (self, kind) {
            case (.started, .started), (.exited, .exited), (.restarting, .restarting), (.escalated, .escalated),
                (.deadLettered, .deadLettered), (.stopped, .stopped), (.killed, .killed), (.abandoned, .abandoned),
                (.quarantined, .quarantined),
                (.checkpointed, .checkpointed):
                return true
            case (.failed, .exited(let reason)):
                return reason.isFailure
            default:
                return false
            }
        }
    }

    private let recorder = Recorder<Event>()

    /// Starts watching `run`.
    public init(_ run: Run) {
        let recorder = self.recorder
        run.addEventSink { recorder.record($0) }
    }

    /// Every event seen so far.
    public var events: [Event] { recorder.values }

    /// The events of one agent or supervisor seen so far.
    public func events(of name: String) -> [Event] { recorder.values.filter { $0.name == name } }

    /// Waits until `name` has had at least `count` events of `kind`, and returns them.
    ///
    /// - Throws: ``Recorder/Timeout`` after `timeout`, naming what was awaited and the last events seen;
    ///   `CancellationError` when the waiting task is cancelled.
    @discardableResult
    public func wait(for name: String, _ kind: Kind, count: Int = 1, timeout: Duration = .seconds(60)) async throws -> [Event] {
        let events = try await recorder.wait(timeout: timeout, for: "\(count) '\(kind)' event(s) of '\(name)'") { events in
            events.lazy.filter { $0.name == name && kind.matches($0.kind) }.count >= count
        }
        return events.filter { $0.name == name && kind.matches($0.kind) }
    }

    /// Waits until `count` events of `kind` have happened, whoever they concern.
    ///
    /// - Throws: ``Recorder/Timeout`` after `timeout`; `CancellationError` when the waiting task is cancelled.
    @discardableResult
    public func wait(forAny kind: Kind, count: Int = 1, timeout: Duration = .seconds(60)) async throws -> [Event] {
        let events = try await recorder.wait(timeout: timeout, for: "\(count) '\(kind)' event(s)") { events in
            events.lazy.filter { kind.matches($0.kind) }.count >= count
        }
        return events.filter { kind.matches($0.kind) }
    }
}
