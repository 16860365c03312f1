import Foundation
import Logging
import OTel
import ServiceLifecycle
import TroupeCLI

/// Exports the spans of runs with OpenTelemetry: `troupe run`, `resume` and `worker` take `--otlp-endpoint URL`
/// and send the engine's spans (a span per handled message, durable step, HTTP call and commit; see
/// `EngineTracing` in the engine) to an OpenTelemetry collector over OTLP/HTTP, with swift-otel.
///
/// Off unless `--otlp-endpoint` is given. The `troupe` binary installs it; a package's own operator binary does
/// so before it runs the command:
///
/// ```swift
/// import TroupeCLI
/// import TroupeOTel
///
/// @main enum Operator {
///     static func main() async {
///         OpenTelemetryExport.install()
///         await TroupeCommand.main(blueprints: [orders])
///     }
/// }
/// ```
///
/// The endpoint is a collector's base URL (`http://127.0.0.1:4318`: spans go to `/v1/traces`) or, with a path,
/// the full traces URL. The service is named `troupe`; the standard `OTEL_*` environment variables set the rest
/// (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_PROTOCOL` = `http/protobuf` (the default)
/// or `http/json`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_SCHEDULE_DELAY`, ...). Spans
/// still buffered when the command ends are exported before it exits.
///
/// A program that builds runs itself needs no module of Troupe's for this: pass swift-otel's tracer
/// (`OTel.makeTracingBackend()`) as the run's `Run.Configuration.tracer`, or bootstrap it for the process.
public enum OpenTelemetryExport {
    /// Gives `run`, `resume` and `worker` their `--otlp-endpoint URL`. Call it before `TroupeCommand.main`.
    public static func install() {
        TraceExport.install { endpoint in try start(endpoint: endpoint) }
    }

    /// Bootstraps the process's tracer with an OTLP/HTTP exporter to `endpoint` and runs its background work.
    static func start(endpoint: String) throws -> TraceExport.Handle {
        var configuration = OTel.Configuration.default
        configuration.serviceName = "troupe"
        configuration.diagnosticLogLevel = .warning
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        // A command that ends waits for its last export at most this long, even with the collector down (10 s by
        // default; `OTEL_EXPORTER_OTLP_TIMEOUT` and `OTEL_BSP_EXPORT_TIMEOUT` still override).
        configuration.traces.otlpExporter.timeout = .seconds(2)
        configuration.traces.batchSpanProcessor.exportTimeout = .seconds(2)
        // The option wins over the environment's endpoints: the per-signal variable is used as it is.
        var environment = ProcessInfo.processInfo.environment
        environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = nil
        environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = tracesURL(endpoint)
        let exporter = try OTel.bootstrap(configuration: configuration, environment: environment)
        var logger = Logger(label: "troupe.otel")
        logger.logLevel = .critical
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(services: [exporter], gracefulShutdownSignals: [], logger: logger)
        )
        let running = Task { try? await group.run() }
        return TraceExport.Handle {
            // A graceful shutdown exports the batch still buffered.
            await group.triggerGracefulShutdown()
            await running.value
        }
    }

    /// The traces URL for `endpoint`: a base URL without a path gets OTLP/HTTP's `/v1/traces`.
    static func tracesURL(_ endpoint: String) -> String {
        guard let url = URL(string: endpoint), url.path.isEmpty || url.path == "/" else { return endpoint }
        return (endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint) + "/v1/traces"
    }
}
