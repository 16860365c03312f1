import InMemoryTracing
import Logging
import Synchronization
import Testing
import Tracing
import Troupe
import TroupeHTTP
import TroupeHTTPTesting
import TroupeTestKit

/// A checkpointed agent that, for each message, runs a durable step that calls a server over HTTP.
struct Caller: Agent {
    struct State: AgentState { var calls = 0 }
    enum Message: Codable, Sendable { case call(String) }
    let server: String
    let done: Recorder<Int>

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        guard case .call(let path) = message else { return }
        let status = try await context.step("fetch") { _ in
            try await context.http.execute(.get(server + path)).status
        }
        state.calls += 1
        try await context.send(Note.Message.note(path), to: "note")
        done.record(status)
    }
}

/// Takes notes.
struct Note: Agent {
    enum Message: Codable, Sendable { case note(String) }
    let seen: Recorder<String>

    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        guard case .note(let text) = message else { return }
        seen.record(text)
    }
}

/// The spans of a traced run, in an in-memory tracer: one per handled message, with the durable step and the
/// HTTP call inside it as children, one per commit; and the HTTP request carries the span's context.
@Suite(.timeLimit(.minutes(1)))
struct TracingTests {
    @Test func aHandledMessageIsASpanWithItsStepAndHTTPCallAsChildren() async throws {
        let injected = Mutex<[String]>([])
        let server = try LoopbackServer { request in
            injected.withLock { $0.append(request.header(InMemoryTracer.traceIDKey) ?? "none") }
            return .respond(status: 204)
        }
        defer { server.close() }
        let http = HTTPClient()
        defer { http.shutdown() }
        let tracer = InMemoryTracer()
        let done = Recorder<Int>()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let configuration = Run.Configuration(logger: logger, durability: .checkpointed, services: [http], tracer: tracer)
        let notes = Recorder<String>()
        let run = try Run(
            Blueprint("traced") {
                Child("note", Note(seen: notes), options: AgentOptions(durability: .ephemeral))
                Child("caller", Caller(server: server.url(""), done: done))
            },
            configuration: configuration
        )
        try await withRunning(run) {
            try await run.send(Caller.Message.call("/a"), to: "caller")
            try await run.send(Caller.Message.call("/b"), to: "caller")
            try await done.wait(forCount: 2)
            try await notes.wait(forCount: 2)
        }
        #expect(done.values == [204, 204])
        let spans = tracer.finishedSpans
        let handles = spans.filter { $0.operationName == "handle Caller" }
        // The message the caller sent carried its trace: the note's handling is a child of the caller's.
        let noted = spans.filter { $0.operationName == "handle Note" }
        #expect(noted.count == 2)
        #expect(Set(noted.compactMap(\.parentSpanID)) == Set(handles.map(\.spanID)), "\(noted.map(\.parentSpanID))")
        #expect(Set(noted.map(\.traceID)) == Set(handles.map(\.traceID)))
        #expect(handles.count == 2, "\(spans.map(\.operationName))")
        for handle in handles {
            #expect(handle.parentSpanID == nil, "a handled message starts its own trace")
            #expect(handle.kind == .consumer)
            #expect(handle.attributes["troupe.agent.name"]?.toSpanAttribute() == "caller")
            let children = spans.filter { $0.parentSpanID == handle.spanID }
            let step = try #require(children.first { $0.operationName == "step fetch" }, "\(children.map(\.operationName))")
            #expect(step.traceID == handle.traceID)
            // The HTTP call is the step's child, in the same trace.
            let call = try #require(spans.first { $0.parentSpanID == step.spanID }, "no span under the step")
            #expect(call.operationName == "HTTP GET" && call.kind == .client && call.traceID == handle.traceID)
            #expect(call.attributes["http.response.status_code"]?.toSpanAttribute() == 204)
        }
        // Each request carried its trace's id (the in-memory tracer's header; W3C traceparent with OpenTelemetry).
        #expect(Set(injected.withLock { $0 }) == Set(handles.map(\.traceID)))
        // A checkpointed agent commits after each message.
        #expect(spans.filter { $0.operationName == "commit" }.count >= 2)
    }
}
