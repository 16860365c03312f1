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
struct Caller: HandlerAgent {
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
struct Note: HandlerAgent {
    enum Message: Codable, Sendable { case note(String) }
    let seen: Recorder<String>

    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        guard case .note(let text) = message else { return }
        seen.record(text)
    }
}

/// Passes each number on to the sink.
struct Relay: HandlerAgent {
    enum Message: Codable, Sendable { case forward(Int) }

    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        guard case .forward(let number) = message else { return }
        try await context.send(Sink.Message.item(number), to: "sink")
    }
}

/// Records each number; with `hold`, records it as begun and then never finishes handling it (until cancelled),
/// like a process killed mid-message.
struct Sink: HandlerAgent {
    enum Message: Codable, Sendable { case item(Int) }
    let handled: Recorder<Int>
    var hold = false

    func handle(_ message: Message, state: inout Stateless, context: AgentContext<Self>) async throws {
        guard case .item(let number) = message else { return }
        handled.record(number)
        if hold { try await Task.sleep(for: .seconds(3_600)) }
    }
}

/// The spans of a traced run, in an in-memory tracer: one per handled message, with the durable step and the
/// HTTP call inside it as children, one per commit; and the HTTP request carries the span's context.
@Suite(.timeLimit(.minutes(3)))
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

    /// A durable message keeps its sender's trace context in the store: handled only after the run was stopped and
    /// resumed, it is still a child of the span that sent it, whether an agent or a caller outside the run sent it.
    @Test func aDurableMessageHandledAfterAResumeContinuesItsSendersTrace() async throws {
        let tracer = InMemoryTracer()
        let store = InMemoryCheckpointStore()
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let configuration = Run.Configuration(store: store, logger: logger, durability: .durable, tracer: tracer)
        func blueprint(_ sink: Sink) -> Blueprint {
            Blueprint("traced-resume") {
                Child("relay", Relay())
                // A held message is cancelled at once when the first run stops.
                Child("sink", sink, shutdown: .init(graceful: .zero, cancellation: .seconds(5)))
            }
        }
        let begun = Recorder<Int>()
        let first = try Run(blueprint(Sink(handled: begun, hold: true)), id: "traced-resume", configuration: configuration)
        let outside = try await withRunning(first) {
            try await first.send(Relay.Message.forward(1), to: "relay")
            _ = try await begun.wait(forCount: 1)
            // The sink holds the first number, so the second waits in its durable inbox.
            try await first.send(Relay.Message.forward(2), to: "relay")
            let outside = try await tracer.withSpan("operator", context: .topLevel, ofKind: .producer) { span in
                try await first.send(Sink.Message.item(3), to: "sink")
                return span.context.inMemorySpanContext!.spanID
            }
            try await waitUntil { store.pendingMessages(of: "traced-resume").filter { $0.recipient == "sink" }.count == 3 }
            return outside
        }
        let relayed = tracer.finishedSpans.filter { $0.operationName == "handle Relay" }
        #expect(relayed.count == 2)

        let handled = Recorder<Int>()
        let second = try Run(blueprint(Sink(handled: handled)), id: "traced-resume", configuration: configuration)
        try await withRunning(second) { _ = try await handled.wait(forCount: 3) }
        #expect(second.isResumed == true)
        #expect(Set(handled.values) == [1, 2, 3])
        let sunk = tracer.finishedSpans.filter { $0.operationName == "handle Sink" }.suffix(3)
        #expect(sunk.count == 3)
        // Each handling after the resume continues its sender's trace: the relay's two, and the caller's outside.
        #expect(Set(sunk.compactMap(\.parentSpanID)) == Set(relayed.map(\.spanID) + [outside]), "\(sunk.map(\.parentSpanID))")
        for span in sunk {
            let parent = try #require(tracer.finishedSpans.first { $0.spanID == span.parentSpanID })
            #expect(span.traceID == parent.traceID)
        }
    }

    /// Polls `condition` until it holds, for at most 10 s.
    func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            try #require(ContinuousClock.now < deadline, "the condition did not hold within 10 s")
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}
