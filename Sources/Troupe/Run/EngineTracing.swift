public import Tracing
import FoundationEssentials

/// The engine's spans, through swift-distributed-tracing. A run traces only when it has a tracer: the one in its
/// configuration (``Run/Configuration/tracer``), else the process's if one was bootstrapped
/// (`InstrumentationSystem.bootstrap`). Without one no span is made.
///
/// | span | kind | parent | attributes |
/// |---|---|---|---|
/// | `handle AGENT-TYPE` | consumer | the span that sent the message (none for a message from outside the run) | `troupe.run.id`, `troupe.agent.name`, `troupe.agent.incarnation` |
/// | `step NAME` | internal | the message's | `troupe.step.key`, `troupe.step.replayed` |
/// | `commit` | internal | the message's when inside one | `troupe.agent.name`, `troupe.commit.messages`, `troupe.commit.sent` |
/// | `HTTP METHOD` | client | the message's or step's (none in a loop-style agent outside a step) | `http.request.method`, `url.full` (query hidden), `http.response.status_code` |
///
/// A message carries its sender's trace context through the mailbox, so a trace follows a message through every
/// agent it reaches. A durable message keeps it in the store too (``SentMessage/trace``: what the tracer injects,
/// W3C `traceparent` and `tracestate` with OpenTelemetry), so a message handled after a crash and resume, in this
/// process or another, still continues its sender's trace. The HTTP client injects the span's context into the
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

    /// `context` as a store keeps it with a durable message: the fields the tracer injects, as a JSON object with
    /// sorted keys; `nil` if the tracer injects nothing for it.
    package func encode(_ context: InstrumentationContext?) -> String? {
        guard let context else { return nil }
        var fields: [String: String] = [:]
        tracer.inject(context, into: &fields, using: FieldsInjector())
        guard !fields.isEmpty, let data = try? Self.encoder.encode(fields) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    /// The context a stored message's trace (``encode(_:)``) carries, as the tracer extracts it; `nil` if it is no
    /// such trace.
    package func decode(_ trace: String?) -> InstrumentationContext? {
        guard let trace, let fields = try? JSONDecoder().decode([String: String].self, from: Data(trace.utf8)),
            !fields.isEmpty
        else { return nil }
        var context = InstrumentationContext.topLevel
        tracer.extract(fields, into: &context, using: FieldsExtractor())
        return context
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return encoder
    }()

    /// The tracing of the run whose agent is handling a message on this task, for code below the agent (the
    /// HTTP client) that cannot reach the run.
    @TaskLocal package static var current: EngineTracing?

    /// Runs `body` with this tracing reachable (``current``) outside any span: what a loop-style agent's code calls
    /// (the HTTP client) traces.
    @usableFromInline
    func within<T>(_ body: () async throws -> T) async rethrows -> T {
        try await EngineTracing.$current.withValue(self) { try await body() }
    }

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

/// Writes a tracer's fields into a dictionary.
private struct FieldsInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}

/// Reads a tracer's fields from a dictionary.
private struct FieldsExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key]
    }
}
