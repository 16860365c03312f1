public import FoundationEssentials

/// What an agent is doing, as stores record it and operators see it.
///
/// Every store derives it from the agent's events (``Event/Kind/impliedStatus``), so `troupe status` says the same
/// whatever the backend.
public enum AgentStatus: String, Sendable, Codable, Hashable, CaseIterable {
    /// An incarnation is running.
    case running
    /// It waits out a restart delay.
    case restarting
    /// Its last incarnation crashed.
    case failed
    /// Its last incarnation was cancelled.
    case cancelled
    /// It was stopped on request, or with its supervisor.
    case stopped
    /// It ended on its own and is not restarted.
    case exited
    /// It ignored cancellation past its deadline and was left behind.
    case abandoned
    /// Its checkpoint cannot be read; it stays stopped until `troupe restart --fresh`.
    case quarantined
}

/// Where a run is in its life, the same in every listing and in JSON.
public enum RunStatus: String, Sendable, Codable, Hashable, CaseIterable {
    /// It waits for a worker to claim it (``WorkerPool``): submitted with `troupe run --detach` to a shared store,
    /// or released by a draining worker.
    case pending
    /// A live process drives it.
    case running
    /// A live process drives it and an operator paused its agents.
    case paused
    /// Its process ended without recording an ending (crash, `kill -9`, reboot): `troupe resume` continues it.
    case crashed
    /// It was stopped gracefully (Ctrl-C, SIGTERM, the end of its service group) and can be resumed.
    case stopped
    /// Its root supervisor gave up, or its process lost the run to another one.
    case failed
    /// Every agent finished.
    case completed
    /// An operator cancelled it.
    case cancelled

    /// Whether a process drives the run now (or did, until it crashed).
    public var isLive: Bool { self == .running || self == .paused }

    /// Whether the run has ended: completed, stopped, cancelled or failed. A pending, live or crashed run has not
    /// (a worker, a resume or its process carries it on).
    public var hasEnded: Bool { self == .completed || self == .stopped || self == .cancelled || self == .failed }

    /// The status a run ends with.
    public init(_ outcome: RunOutcome) {
        switch outcome {
        case .stopped: self = .stopped
        case .failed: self = .failed
        case .completed: self = .completed
        case .cancelled: self = .cancelled
        }
    }
}

extension Event.Kind {
    /// Every event name (``name``), in the order a life usually meets them.
    public static let names = [
        "started", "checkpointed", "crashed", "restarting", "cancelled", "exited", "stopped", "killed", "abandoned",
        "escalated", "dead-lettered", "quarantined", "process-lost", "resumed", "command", "log",
    ]

    /// The event's name: the same word in logs, `troupe events`, `troupe run`'s output and every JSON line.
    public var name: String {
        switch self {
        case .started: "started"
        case .exited(.failed): "crashed"
        case .exited(.cancelled): "cancelled"
        case .exited: "exited"
        case .restarting: "restarting"
        case .escalated: "escalated"
        case .deadLettered: "dead-lettered"
        case .stopped: "stopped"
        case .killed: "killed"
        case .abandoned: "abandoned"
        case .checkpointed: "checkpointed"
        case .quarantined: "quarantined"
        case .processLost: "process-lost"
        case .resumed: "resumed"
        case .commandApplied: "command"
        case .logged: "log"
        }
    }

    /// What the event carries, in words; empty when nothing.
    public var detail: String {
        switch self {
        case .started, .stopped, .exited(.cancelled): ""
        case .exited(.failed(let error)): "\(error)"
        case .exited(.normal): "normal"
        case .exited(.stopped): "stopped"
        case .restarting(let delay, let restarts): "in \(Self.seconds(delay)) (restart \(restarts))"
        case .escalated(let restarts, let period): "\(restarts) restarts within \(Self.seconds(period))"
        case .deadLettered(let error, let failures): "after \(failures) crashes: \(error)"
        case .killed: "cancelled after its graceful deadline"
        case .abandoned: "ignored cancellation past its deadline"
        case .checkpointed(let sequence): "#\(sequence)"
        case .quarantined(let error): error
        case .processLost(let process): "\(process) stopped without ending the run (its last heartbeat)"
        case .resumed(let process): "by \(process)"
        case .commandApplied(let command):
            command.action.verb + (command.action.agent.map { " " + $0 } ?? "")
                + (command.origin.map { " by \($0.by)" + ($0.reason.map { " (\"\($0)\")" } ?? "") } ?? "")
                + (command.result.map { ": \($0)" } ?? "")
        case .logged(let level, let message): "\(level) \(message)"
        }
    }

    /// The status the event puts its agent in, or `nil` if it changes none (checkpoints, escalations, dead
    /// letters).
    public var impliedStatus: AgentStatus? {
        switch self {
        case .started: .running
        case .exited(.failed): .failed
        case .exited(.cancelled): .cancelled
        case .exited(.stopped): .stopped
        case .exited(.normal): .exited
        case .restarting: .restarting
        case .stopped, .killed: .stopped
        case .abandoned: .abandoned
        case .quarantined: .quarantined
        case .escalated, .deadLettered, .checkpointed, .processLost, .resumed, .commandApplied, .logged: nil
        }
    }

    /// The error the event reports, recorded as the agent's last error.
    public var error: String? {
        switch self {
        case .exited(.failed(let error)): "\(error)"
        case .quarantined(let error): error
        default: nil
        }
    }

    /// A duration as seconds with milliseconds: `0.012s`.
    static func seconds(_ duration: Duration) -> String {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        let fraction = String(milliseconds % 1000)
        return "\(milliseconds / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)s"
    }
}

/// An event as a store keeps it and every listing shows it.
public struct EventRecord: Sendable, Codable, Hashable {
    /// The event's position in its run's log (1, 2, …); 0 for an event not read from a store.
    public var sequence: Int64
    /// The run.
    public var run: RunID
    /// The agent or supervisor.
    public var agent: String
    /// The incarnation (0 for a supervisor's own events).
    public var incarnation: UInt64
    /// ``Event/Kind/name``.
    public var event: String
    /// ``Event/Kind/detail``.
    public var detail: String
    /// When it happened.
    public var time: Date

    /// Creates a record.
    public init(sequence: Int64 = 0, run: RunID, agent: String, incarnation: UInt64, event: String, detail: String, time: Date) {
        self.sequence = sequence
        self.run = run
        self.agent = agent
        self.incarnation = incarnation
        self.event = event
        self.detail = detail
        self.time = time
    }

    /// The record of a live event.
    public init(_ event: Event, sequence: Int64 = 0) {
        self.init(
            sequence: sequence, run: event.run, agent: event.name, incarnation: event.incarnation,
            event: event.kind.name, detail: event.kind.detail, time: event.time
        )
    }
}
