import Foundation
import Synchronization
import Testing
import TroupeHTTPTesting
import TroupeTestSupport

/// `--otlp-endpoint`: the `troupe` binary exports a run's spans with OpenTelemetry (OTLP over HTTP) to a collector,
/// here a loopback server that keeps what it is sent. In a process of its own, because the exporter is the
/// process's tracer (bootstrapped once).
@Suite(.timeLimit(.minutes(4)))
struct OpenTelemetryTests {
    /// One exported span, as OTLP/JSON writes it.
    struct Span: Decodable {
        var traceId: String
        var spanId: String
        var parentSpanId: String?
        var name: String
        var kind: Int?
    }

    /// What the collector was sent: OTLP/JSON `ExportTraceServiceRequest`s.
    struct Export: Decodable {
        struct ResourceSpans: Decodable {
            struct Resource: Decodable {
                struct Attribute: Decodable {
                    struct Value: Decodable { var stringValue: String? }
                    var key: String
                    var value: Value
                }
                var attributes: [Attribute]
            }
            struct ScopeSpans: Decodable { var spans: [Span] }
            var resource: Resource
            var scopeSpans: [ScopeSpans]
        }
        var resourceSpans: [ResourceSpans]
    }

    /// Runs `troupe run ARGUMENTS --otlp-endpoint COLLECTOR` to its end (OTLP/JSON, so the test can read it) and
    /// returns the spans the collector received by then, with the service names they came with.
    func export(_ arguments: [String]) async throws -> (spans: [Span], services: [String]) {
        let exports = Mutex<[(path: String, type: String, body: [UInt8])]>([])
        let collector = try LoopbackServer { request in
            exports.withLock { $0.append((request.path, request.header("content-type") ?? "", request.body)) }
            return .respond(status: 200, headers: [("Content-Type", "application/json")], body: Array("{}".utf8))
        }
        defer { collector.close() }
        let troupe = try Operator()
        let process = troupe.process(["run"] + arguments + ["--otlp-endpoint", collector.url("")])
        var environment = ProcessInfo.processInfo.environment
        environment["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/json"
        environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://127.0.0.1:9/elsewhere"  // the option wins
        process.environment = environment
        let result = try await runToEnd(process)
        try #require(result.status == 0, "troupe run: \(result.stderr)")
        // Exported by the time the command returned: the exporter sends what it holds before the process exits.
        let sent = exports.withLock { $0 }
        try #require(!sent.isEmpty, "the collector received nothing; stderr: \(result.stderr)")
        #expect(sent.allSatisfy { $0.path == "/v1/traces" && $0.type.hasPrefix("application/json") }, "\(sent.map { ($0.path, $0.type) })")
        let decoded = try sent.map { try JSONDecoder().decode(Export.self, from: Data($0.body)) }
        let services = decoded.flatMap(\.resourceSpans).flatMap(\.resource.attributes).filter { $0.key == "service.name" }
        return (decoded.flatMap(\.resourceSpans).flatMap(\.scopeSpans).flatMap(\.spans), services.compactMap(\.value.stringValue))
    }

    /// A durable pipeline's messages carry their trace from agent to agent: each of the counter's handled messages
    /// is a child of the relay's that sent it, in its trace; every commit is a span.
    @Test func aRunsSpansReachACollectorWithTheirParents() async throws {
        let (spans, services) = try await export(["counting", "--param", "count=50", "--param", "interval=0s"])
        #expect(!services.isEmpty && services.allSatisfy { $0 == "troupe" }, "\(services)")
        let relayed = spans.filter { $0.name == "handle Relay" }
        let counted = spans.filter { $0.name == "handle Counter" }
        #expect(relayed.count == 50 && counted.count == 50, "\(relayed.count) relayed, \(counted.count) counted")
        let relays = Dictionary(relayed.map { ($0.spanId, $0) }, uniquingKeysWith: { first, _ in first })
        for span in counted {
            let parent = try #require(span.parentSpanId.flatMap { relays[$0] }, "a counted message's span has no relay's span as its parent: \(span)")
            #expect(parent.traceId == span.traceId)
        }
        #expect(spans.contains { $0.name == "commit" }, "\(Set(spans.map(\.name)))")
    }

    /// A loop-style agent's HTTP calls are client spans.
    @Test func anAgentsHTTPCallsAreClientSpans() async throws {
        let (spans, _) = try await export(["fetch-many", "--param", "count=3"])
        let calls = spans.filter { $0.name == "HTTP GET" }
        #expect(calls.count == 3, "\(spans.map(\.name))")
        #expect(calls.allSatisfy { $0.kind == 3 }, "OTLP's SPAN_KIND_CLIENT is 3: \(calls.map(\.kind))")
    }

    /// An endpoint that is no http(s) URL is a usage error, before anything starts.
    @Test func aBadEndpointIsAUsageError() async throws {
        let troupe = try Operator()
        let result = try await troupe.troupe("run", "counting", "--otlp-endpoint", "127.0.0.1:4318")
        #expect(result.status == 64)
        #expect(result.stderr.contains("--otlp-endpoint takes an http:// or https:// URL"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: troupe.database), "a usage error created the database")
    }
}
