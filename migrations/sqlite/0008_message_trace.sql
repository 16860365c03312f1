-- 0008: a durable message keeps its sender's trace context.
-- Why: a traced run's messages carry the sender's span context from agent to agent, but a durable message handled
-- after a crash and resume lost it, and its handling started a new trace. The context is what the run's tracer
-- injects (W3C traceparent and tracestate with OpenTelemetry) as a JSON object; NULL when the run did not trace.
ALTER TABLE messages ADD COLUMN trace TEXT;
