public import Tracing

/// The engine's spans, through swift-distributed-tracing. A run traces only when it has a tracer: the one in its
/// configuration (``Run/Configuration/tracer``), else the process's if one was bootstrapped
/// (`InstrumentationSystem.bootstrap`). Without one no span is made.
///
/// | span | kind | parent | attributes |
/// |---|---|---|---|
/// | `handle AGENT-TYPE` | consumer | the span that sent the message (none for a message from outside the run) | `troupe.run.id`, `troupe.agent.name`, `troupe.agent.incarnation` |
/// | `step NAME` | internal | the message's | `troupe.step.key`, `troupe.step.replayed` |
/// | `commit` | internal | the message's when inside one | `troupe.agent.name`, `troupe.commit.messages`, `troupe.commit.sent` |
/// | `HTTP METHOD` | client | the message's | `http.request.method`, `url.full` (query hidden), `http.response.status_code` |
///
/// A message carries its sender's trace context through the mailbox, so a trace follows a message through every
/// agent it reaches. (A durable message redelivered after a crash does not carry it: its store keeps no trace
/// context yet, and its handling starts a new trace.) The HTTP client injects the span's context into the
/// request's headers (W3C `traceparent` with an OpenTelemetry tracer), so the services an agent calls continue it.
@usableFromInline
package final class EngineTracing: Sendable {
    @usableFromInline package let tracer: any Tracer

    init(tracer: any Tracer) {
        self.tracer = tracer
    }

    /// The tracing of a run configured with `tracer`, or of the process's tracer; `nil` when neither traces.
    static func make(_ tracer: (any Tracer)?) -> EngineTracing? {
        if let tracer { return EngineTracing(tracer: tracer) }
        let global = InstrumentationSystem.tracer
        return global is NoOpTracer ? nil : EngineTracing(tracer: global)
    }

    /// The tracing of the run whose agent is handling a message on this task, for code below the agent (the
    /// HTTP client) that cannot reach the run.
    @TaskLocal package static var current: EngineTracing?

    /// Runs `body` in a span named `name`, a child of `parent` or else of the task's current span, with the span's
    /// context current and this tracing reachable (``current``) inside it; an error thrown is recorded on the span.
    @usableFromInline
    package func span<T>(
        _ name: String,
        kind: SpanKind = .internal,
        parent: InstrumentationContext? = nil,
        attributes: (inout SpanAttributes) -> Void = { _ in },
        _ body: (any Span) async throws -> T
    ) async rethrows -> T {
        let span: any Span = tracer.startSpan(name, context: parent ?? InstrumentationContext.current ?? .topLevel, ofKind: kind)
        var values = span.attributes
        attributes(&values)
        span.attributes = values
        defer { span.end() }
        do {
            return try await InstrumentationContext.$current.withValue(span.context) {
                try await EngineTracing.$current.withValue(self) { try await body(span) }
            }
        } catch {
            span.recordError(error)
            throw error
        }
    }
}
