public import CoreMetrics
import Synchronization

/// The engine's metrics, through swift-metrics. A run records them only when it has a backend: the one in its
/// configuration (``Run/Configuration/metrics``), else the process's if one was bootstrapped
/// (`MetricsSystem.bootstrap`). Without one nothing is recorded and the clock is not even read.
///
/// | metric | type | dimensions |
/// |---|---|---|
/// | `troupe_messages_handled_total` | counter | `agent_type` |
/// | `troupe_messages_sent_total` | counter | `agent_type` (the recipient's; a send a stopped mailbox refused included) |
/// | `troupe_handler_duration_seconds` | timer | `agent_type` |
/// | `troupe_mailbox_depth` | gauge | `agent_type` (all agents of that type in the run, when the tree is published) |
/// | `troupe_agent_exits_total` | counter | `reason`: normal, crashed, stopped, cancelled |
/// | `troupe_restarts_total` | counter | `reason`: what ended the child whose exit caused it, or `operator` |
/// | `troupe_dead_letters_total` | counter | `agent_type` |
/// | `troupe_escalations_total` | counter | |
/// | `troupe_lease_held` | gauge | `run`: 1 while this process drives it under its lease |
/// | `troupe_leases_lost_total` | counter | |
///
/// Stores and the HTTP client record theirs through the process's backend (``ProcessMetrics``).
@usableFromInline
final class EngineMetrics: Sendable {
    let factory: any MetricsFactory
    private let agents = Mutex<[String: AgentMetrics]>([:])

    init(factory: any MetricsFactory) {
        self.factory = factory
    }

    /// The metrics of a run configured with `factory`, or of the process's backend; `nil` when neither records.
    static func make(_ factory: (any MetricsFactory)?) -> EngineMetrics? {
        if let factory { return EngineMetrics(factory: factory) }
        let global = MetricsSystem.factory
        return global is NOOPMetricsHandler ? nil : EngineMetrics(factory: global)
    }

    /// The metrics of one agent type, made once per run.
    func agent(_ type: String) -> AgentMetrics {
        agents.withLock { cache in
            if let metrics = cache[type] { return metrics }
            let metrics = AgentMetrics(type: type, factory: factory)
            cache[type] = metrics
            return metrics
        }
    }

    func counter(_ label: String, _ dimensions: [(String, String)] = []) -> Counter {
        Counter(label: label, dimensions: dimensions, factory: factory)
    }

    func exited(_ reason: ExitReason) {
        counter("troupe_agent_exits_total", [("reason", reason.metricName)]).increment()
    }

    func restarted(_ count: Int, reason: String) {
        counter("troupe_restarts_total", [("reason", reason)]).increment(by: Int64(count))
    }

    func escalated() { counter("troupe_escalations_total").increment() }

    func lease(_ run: RunID, held: Bool) {
        Gauge(label: "troupe_lease_held", dimensions: [("run", run.rawValue)], factory: factory).record(held ? 1 : 0)
    }

    func leaseLost() { counter("troupe_leases_lost_total").increment() }

    /// Sets each agent type's mailbox depth: the sum over the run's agents of that type.
    func mailboxes(_ nodes: [TreeNode]) {
        var depths: [String: Int] = [:]
        func walk(_ nodes: [TreeNode]) {
            for node in nodes {
                if node.type != "Supervisor" { depths[node.type, default: 0] += node.mailboxDepth }
                walk(node.children)
            }
        }
        walk(nodes)
        for (type, depth) in depths {
            Gauge(label: "troupe_mailbox_depth", dimensions: [("agent_type", type)], factory: factory).record(depth)
        }
    }
}

/// The metrics of one agent type in one run, made when its first cell is.
@usableFromInline
final class AgentMetrics: Sendable {
    @usableFromInline let handled: Counter
    @usableFromInline let sent: Counter
    @usableFromInline let handling: CoreMetrics.Timer
    let deadLetters: Counter

    init(type: String, factory: any MetricsFactory) {
        let dimensions = [("agent_type", type)]
        handled = Counter(label: "troupe_messages_handled_total", dimensions: dimensions, factory: factory)
        sent = Counter(label: "troupe_messages_sent_total", dimensions: dimensions, factory: factory)
        handling = CoreMetrics.Timer(label: "troupe_handler_duration_seconds", dimensions: dimensions, factory: factory)
        deadLetters = Counter(label: "troupe_dead_letters_total", dimensions: dimensions, factory: factory)
    }

    /// Records a handler call that began at `started`.
    @inlinable
    func handled(since started: ContinuousClock.Instant) {
        let elapsed = (ContinuousClock.now - started).components
        handling.recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
    }
}

/// What stores and the HTTP client record, through the process's backend (nothing unless one is bootstrapped).
package enum ProcessMetrics {
    /// A commit: how many agents' units of work it carried, and how long it took.
    package static func commit(store: String, batch: Int, duration: Duration) {
        guard !(MetricsSystem.factory is NOOPMetricsHandler) else { return }
        let dimensions = [("store", store)]
        Recorder(label: "troupe_commit_batch_size", dimensions: dimensions).record(batch)
        CoreMetrics.Timer(label: "troupe_commit_duration_seconds", dimensions: dimensions).recordNanoseconds(nanoseconds(duration))
    }

    /// An HTTP request: its method, its status (or `error` when no response came), and how long it took.
    package static func http(method: String, status: Int?, duration: Duration) {
        guard !(MetricsSystem.factory is NOOPMetricsHandler) else { return }
        Counter(label: "troupe_http_requests_total", dimensions: [("method", method), ("status", status.map(String.init) ?? "error")]).increment()
        CoreMetrics.Timer(label: "troupe_http_request_duration_seconds", dimensions: [("method", method)]).recordNanoseconds(nanoseconds(duration))
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }
}

extension ExitReason {
    /// The reason as a metric's dimension: `normal`, `crashed`, `stopped` or `cancelled`.
    var metricName: String {
        switch self {
        case .normal: "normal"
        case .failed: "crashed"
        case .stopped: "stopped"
        case .cancelled: "cancelled"
        }
    }
}
