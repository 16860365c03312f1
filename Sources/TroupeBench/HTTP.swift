// HTTP figures: GETs with 32 in flight against a loopback server this process starts, through TroupeHTTP's
// libcurl client and, side by side, Foundation's URLSession.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization
import TroupeHTTP
import TroupeHTTPTesting

/// CPU time (user + system) this process has used, in seconds.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

/// Runs `count` requests, `concurrency` at a time, and reports requests/s, latency percentiles and CPU per request.
func loadTest(_ name: String, count: Int, concurrency: Int, _ request: @escaping @Sendable () async throws -> Void) async throws {
    final class Shared: Sendable {
        let next = Atomic<Int>(0)
        let latencies = Mutex<[Duration]>([])
    }
    let shared = Shared()
    let cpuBefore = cpuSeconds()
    let start = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<concurrency {
            group.addTask {
                var mine: [Duration] = []
                while shared.next.add(1, ordering: .relaxed).oldValue < count {
                    let begun = ContinuousClock.now
                    try await request()
                    mine.append(begun.duration(to: .now))
                }
                shared.latencies.withLock { $0.append(contentsOf: mine) }
            }
        }
        try await group.waitForAll()
    }
    let elapsed = seconds(start.duration(to: .now))
    let cpu = cpuSeconds() - cpuBefore
    let sorted = shared.latencies.withLock { $0 }.sorted()
    func percentile(_ p: Double) -> Double { seconds(sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]) * 1e6 }
    report("\(name)_rate", Double(count) / elapsed, "req/s")
    report("\(name)_p50", percentile(0.5), "us")
    report("\(name)_p99", percentile(0.99), "us")
    report("\(name)_cpu_per_request", cpu / Double(count) * 1e6, "us")
}

/// From cancelling a task waiting on a transfer (to a server that never answers) to the task seeing the
/// cancellation, and from there to the server seeing the connection close.
func httpCancelLatency(samples: Int) async throws {
    let server = try LoopbackServer { _ in .hang }
    defer { server.close() }
    let client = HTTPClient(configuration: .init(timeout: .seconds(60), retry: .never))
    defer { client.shutdown() }
    var latencies: [Duration] = []
    for _ in 0..<samples {
        let call = Task { try await client.execute(.get(server.url("/forever"))) }
        try await Task.sleep(for: .milliseconds(20))
        let cancelled = ContinuousClock.now
        call.cancel()
        _ = try? await call.value
        latencies.append(cancelled.duration(to: .now))
    }
    latencies.sort()
    report("http_cancel_latency_p50", seconds(latencies[latencies.count / 2]) * 1e6, "us")
    report("http_cancel_latency_max", seconds(latencies[latencies.count - 1]) * 1e6, "us")
}

func httpThroughput() async throws {
    let payload = Array(String(repeating: "x", count: 512).utf8)
    let server = try LoopbackServer { _ in .respond(status: 200, headers: [("Content-Type", "text/plain")], body: payload) }
    defer { server.close() }
    let url = server.url("/quote")
    let client = HTTPClient(configuration: .init(retry: .never))
    defer { client.shutdown() }
    let foundationURL = URL(string: url)!
    let configuration = URLSessionConfiguration.default
    configuration.httpMaximumConnectionsPerHost = 32
    let session = URLSession(configuration: configuration)
    // Warm both up (connections, code paths).
    try await loadTest("http_warmup_troupe", count: 200, concurrency: 32) { _ = try await client.execute(.get(url)) }
    for count in [1_000, 10_000] {
        try await loadTest("http_troupe_\(count)gets_32conc", count: count, concurrency: 32) {
            let response = try await client.execute(.get(url))
            precondition(response.body.count == 512)
        }
        try await loadTest("http_urlsession_\(count)gets_32conc", count: count, concurrency: 32) {
            let (data, _) = try await session.data(from: foundationURL)
            precondition(data.count == 512)
        }
    }
}
