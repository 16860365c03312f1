import Foundation
import Metrics
import Prometheus
import Troupe

/// The Prometheus registry of this process: the engine's metrics (swift-metrics, once ``bootstrap()`` ran) and,
/// in `troupe serve`, the console's own requests and the store's runs by status.
public final class ConsoleMetrics: Sendable {
    /// The process's one registry, bootstrapped as the swift-metrics backend on first use.
    public static let shared: ConsoleMetrics = {
        let metrics = ConsoleMetrics()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
        return metrics
    }()

    let registry = PrometheusCollectorRegistry()

    private init() {}

    /// Makes sure the registry is the swift-metrics backend of this process.
    public static func bootstrap() { _ = shared }

    /// The registry's text, in Prometheus's exposition format.
    public func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }

    func request(method: String, status: Int, after duration: Duration) {
        let dimensions = [("method", method), ("status", String(status))]
        Counter(label: "troupe_console_requests_total", dimensions: dimensions).increment()
        Timer(label: "troupe_console_request_duration_seconds", dimensions: [("method", method)]).recordNanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        )
    }

    /// Sets the gauges that describe the store: runs by status, agents and restarts of the runs not ended.
    func refresh(from store: any OperatorStore) async {
        guard let runs = try? await store.runs() else { return }
        var counts: [String: Int] = [:]
        for status in RunStatus.allCases { counts[status.rawValue] = 0 }
        for run in runs { counts[run.status.rawValue, default: 0] += 1 }
        for (status, count) in counts {
            Gauge(label: "troupe_runs", dimensions: [("status", status)]).record(count)
        }
        let live = runs.filter { !$0.status.hasEnded }
        Gauge(label: "troupe_live_run_agents").record(live.reduce(0) { $0 + $1.agents })
        Gauge(label: "troupe_live_run_restarts").record(live.reduce(0) { $0 + $1.restarts })
    }
}
