import Hummingbird
import Logging
import NIOCore
import Troupe
import TroupeCLI

extension ServeCommand: InstallsIntoTroupe {
    /// Listing `serve` among a binary's verbs also gives `run`, `resume` and `worker` their `--metrics ADDRESS`.
    package static func install() {
        MetricsEndpoint.install { host, port in try await MetricsServer.start(host: host, port: port) }
    }
}

/// The Prometheus endpoint of `--metrics`: `/metrics` only, on its own port, beside the process's work.
enum MetricsServer {
    static func start(host: String, port: Int) async throws -> MetricsEndpoint.Handle {
        let metrics = ConsoleMetrics.shared
        let router = Router()
        router.get("/metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition()))
            )
        }
        var logger = Logger(label: "troupe.metrics")
        logger.logLevel = .critical
        let (ready, listening) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                listening.yield(channel.localAddress?.port ?? port)
                listening.finish()
            },
            logger: logger
        )
        let server = Task {
            defer { listening.finish() }
            try await app.runService(gracefulShutdownSignals: [])
        }
        for await bound in ready {
            return MetricsEndpoint.Handle(port: bound) {
                server.cancel()
                _ = await server.result
            }
        }
        // It stopped before listening: say why.
        let reason: String
        switch await server.result {
        case .failure(let error): reason = "\(error)"
        case .success: reason = "it stopped at once"
        }
        throw TroupeError(.invalidSpec, "--metrics: cannot listen on \(host):\(port) (\(reason)). Choose another port, or 0 for any free one.")
    }
}
