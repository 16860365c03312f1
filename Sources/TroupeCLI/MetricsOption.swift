package import ArgumentParser
import Foundation
import Synchronization

/// `--metrics ADDRESS` of the verbs that drive runs (`run`, `resume`, `worker`): serve the process's metrics as
/// Prometheus text on `http://ADDRESS/metrics` while it works. The server comes from the console's module
/// (`TroupeConsole`), which installs it when its `serve` verb is among the binary's verbs.
package struct MetricsOption: ParsableArguments {
    package init() {}

    @Option(
        name: .customLong("metrics"),
        help: ArgumentHelp(
            "Serve this process's metrics as Prometheus text on http://ADDRESS/metrics: a port, or host:port (host 127.0.0.1 unless given; port 0 picks one).",
            valueName: "address"
        )
    )
    package var address: String?

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
    }

    /// Starts the endpoint if `--metrics` was given, and says where on standard error; stop it with the handle.
    func start() async throws -> MetricsEndpoint.Handle? {
        guard let (host, port) = try parsed(), let start = MetricsEndpoint.starter else { return nil }
        let handle = try await start(host, port)
        printError("troupe: metrics on http://\(host.contains(":") ? "[\(host)]" : host):\(handle.port)/metrics")
        return handle
    }

    /// The options to pass on to a background process.
    var arguments: [String] { address.map { ["--metrics", $0] } ?? [] }
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

/// Runs `body` with the `--metrics` endpoint up (if asked), and stops it after, whatever happens.
func withMetrics<T>(_ option: MetricsOption, _ body: () async throws -> T) async throws -> T {
    let endpoint = try await option.start()
    do {
        let result = try await body()
        await endpoint?.stop()
        return result
    } catch {
        await endpoint?.stop()
        throw error
    }
}
