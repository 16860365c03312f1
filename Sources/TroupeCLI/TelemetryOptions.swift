package import ArgumentParser
import Foundation
import Synchronization

/// The telemetry options of the verbs that drive runs (`run`, `resume`, `worker`):
/// - `--metrics ADDRESS`: serve the process's metrics as Prometheus text on `http://ADDRESS/metrics` while it works.
///   The server comes from the console's module (`TroupeConsole`), which installs it when its `serve` verb is among
///   the binary's verbs.
/// - `--otlp-endpoint URL`: export the runs' spans with OpenTelemetry (OTLP over HTTP). The exporter comes from the
///   `TroupeOTel` module, which installs it (``TraceExport``); off unless given.
package struct TelemetryOptions: ParsableArguments {
    package init() {}

    @Option(
        name: .customLong("metrics"),
        help: ArgumentHelp(
            "Serve this process's metrics as Prometheus text on http://ADDRESS/metrics: a port, or host:port (host 127.0.0.1 unless given; port 0 picks one).",
            valueName: "address"
        )
    )
    package var address: String?

    @Option(
        name: .customLong("otlp-endpoint"),
        help: ArgumentHelp(
            "Export the runs' spans with OpenTelemetry (OTLP over HTTP) to URL: a collector's base URL such as http://127.0.0.1:4318 (spans go to /v1/traces), or the full traces URL. The standard OTEL_* variables set the rest (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_HEADERS, ...).",
            valueName: "url"
        )
    )
    package var otlpEndpoint: String?

    /// `address` as host and port.
    func parsed() throws -> (host: String, port: Int)? {
        guard let address else { return nil }
        var host = "127.0.0.1"
        var portText = address
        if let colon = address.lastIndex(of: ":") {
            host = String(address[..<colon]).trimmingCharacters(in: ["[", "]"])
            portText = String(address[address.index(after: colon)...])
        }
        guard let port = Int(portText), (0...65_535).contains(port), !host.isEmpty else {
            throw ValidationError("--metrics takes a port or host:port, such as 9464 or 0.0.0.0:9464, not '\(address)'")
        }
        return (host, port)
    }

    package func validate() throws {
        _ = try parsed()
        if address != nil, MetricsEndpoint.starter == nil {
            throw ValidationError("this troupe was built without the metrics endpoint: link TroupeConsole and pass ServeCommand among its verbs")
        }
        if let otlpEndpoint {
            guard let url = URL(string: otlpEndpoint), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                throw ValidationError("--otlp-endpoint takes an http:// or https:// URL, such as http://127.0.0.1:4318, not '\(otlpEndpoint)'")
            }
            if TraceExport.starter == nil {
                throw ValidationError("this troupe was built without the OpenTelemetry exporter: link TroupeOTel and call OpenTelemetryExport.install() before TroupeCommand.main")
            }
        }
    }

    /// Starts the endpoint if `--metrics` was given, and says where on standard error; stop it with the handle.
    func start() async throws -> MetricsEndpoint.Handle? {
        guard let (host, port) = try parsed(), let start = MetricsEndpoint.starter else { return nil }
        let handle = try await start(host, port)
        printError("troupe: metrics on http://\(host.contains(":") ? "[\(host)]" : host):\(handle.port)/metrics")
        return handle
    }

    /// Starts the exporter if `--otlp-endpoint` was given; stop it (flushing the spans) with the handle.
    func startExport() async throws -> TraceExport.Handle? {
        guard let otlpEndpoint, let start = TraceExport.starter else { return nil }
        return try await start(otlpEndpoint)
    }

    /// The options to pass on to a background process.
    var arguments: [String] {
        (address.map { ["--metrics", $0] } ?? []) + (otlpEndpoint.map { ["--otlp-endpoint", $0] } ?? [])
    }
}

/// The span exporter of `--otlp-endpoint`, installed by `TroupeOTel`.
package enum TraceExport {
    /// A running exporter, bootstrapped as the process's tracer.
    package struct Handle: Sendable {
        /// Exports the spans still buffered, then stops.
        package var stop: @Sendable () async -> Void

        package init(stop: @escaping @Sendable () async -> Void) {
            self.stop = stop
        }
    }

    package typealias Starter = @Sendable (_ endpoint: String) async throws -> Handle

    private static let storage = Mutex<Starter?>(nil)

    /// Makes `--otlp-endpoint` export with `starter`.
    package static func install(_ starter: @escaping Starter) {
        storage.withLock { $0 = starter }
    }

    static var starter: Starter? { storage.withLock { $0 } }
}

/// The metrics server of `--metrics`, installed by `TroupeConsole`.
package enum MetricsEndpoint {
    /// A running endpoint.
    package struct Handle: Sendable {
        package var port: Int
        package var stop: @Sendable () async -> Void

        package init(port: Int, stop: @escaping @Sendable () async -> Void) {
            self.port = port
            self.stop = stop
        }
    }

    package typealias Starter = @Sendable (_ host: String, _ port: Int) async throws -> Handle

    private static let storage = Mutex<Starter?>(nil)

    /// Makes `--metrics` serve with `starter`.
    package static func install(_ starter: @escaping Starter) {
        storage.withLock { $0 = starter }
    }

    static var starter: Starter? { storage.withLock { $0 } }
}

/// A verb whose module adds to the CLI when the binary lists it (``TroupeCommand/main(blueprints:services:verbs:)``).
package protocol InstallsIntoTroupe {
    static func install()
}

/// Runs `body` with the `--metrics` endpoint up and the `--otlp-endpoint` exporter bootstrapped (if asked), and
/// stops them after, whatever happens (the exporter sends what it still holds).
func withTelemetry<T>(_ options: TelemetryOptions, _ body: () async throws -> T) async throws -> T {
    let export = try await options.startExport()
    let endpoint: MetricsEndpoint.Handle?
    do {
        endpoint = try await options.start()
    } catch {
        await export?.stop()
        throw error
    }
    do {
        let result = try await body()
        await endpoint?.stop()
        await export?.stop()
        return result
    } catch {
        await endpoint?.stop()
        await export?.stop()
        throw error
    }
}
