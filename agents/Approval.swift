public import Troupe
import FoundationEssentials
import Logging
import TroupeHTTP

/// Drafts an answer to a prompt with an OpenAI-compatible chat endpoint (as `llm-chat` does), then waits — durably,
/// for days if need be — for a person's approval before "sending" it: human-in-the-loop that survives crashes,
/// `kill -9` and resumes.
///
/// The draft is a durable step, so a crash never asks the model twice. The wait is
/// ``AgentContext/signal(_:as:timeout:)``: `troupe signal RUN writer approve '{"approve":true}'` answers it,
/// exactly once, whether the run's process is alive, restarting or gone until `troupe resume`.
public struct ApprovalWriter: Agent {
    public struct State: AgentState {
        /// The model's draft, once written.
        public var draft: String?
        /// `sent`, `rejected` or `expired`, once decided.
        public var outcome: String?
        /// The reviewer's note, if any.
        public var note: String?
        /// How many times the answer was sent: 0 or 1.
        public var sent = 0
        public init() {}
    }

    /// What the reviewer answers.
    public struct Decision: Codable, Sendable {
        public var approve: Bool
        public var note: String?
    }

    let endpoint: LLMChat.Endpoint
    let prompt: String
    let timeout: Duration?

    /// - Parameters:
    ///   - endpoint: The chat endpoint that drafts.
    ///   - prompt: What to answer.
    ///   - timeout: How long to wait for the decision (`nil`: until it comes); past it the draft expires.
    public init(endpoint: LLMChat.Endpoint, prompt: String, timeout: Duration?) {
        self.endpoint = endpoint
        self.prompt = prompt
        self.timeout = timeout
    }

    public func run(state: inout State, context: AgentContext<Self>) async throws {
        guard state.outcome == nil else { return }  // decided before a restart or a resume
        if state.draft == nil {
            let baseURL = try endpoint.baseURL.resolve()
            let endpoint = self.endpoint
            let prompt = self.prompt
            state.draft = try await context.step("draft") { _ in
                var request = try HTTPRequest.post(
                    baseURL + "/chat/completions",
                    json: LLMChat.ChatRequest(model: endpoint.model, messages: [.init(role: "user", content: prompt)])
                )
                request.headers.append(("Accept", "text/event-stream"))
                if let key = endpoint.apiKey { request.headers.append(("Authorization", "Bearer \(key)")) }
                var answer = ""
                for try await event in ServerSentEvents(try await context.http.stream(request).body) {
                    if event.data == "[DONE]" { break }
                    if let chunk = try? JSONDecoder().decode(LLMChat.Chunk.self, from: Data(event.data.utf8)),
                        let token = chunk.choices.first?.delta.content
                    {
                        answer += token
                    }
                }
                return answer
            }
            try await context.checkpoint(state)
        }
        context.logger.notice(
            "draft ready; approve with: troupe signal \(context.id.run) \(context.id.name) approve '{\"approve\":true}'"
        )
        guard let decision = try await context.signal("approve", as: Decision.self, timeout: timeout) else {
            state.outcome = "expired"
            return context.logger.notice("nobody decided in time; the draft expired unsent")
        }
        state.note = decision.note
        if decision.approve {
            // "Sending": in a real agent, an HTTP call in a durable step with the step's idempotency key.
            state.sent += 1
            state.outcome = "sent"
            context.logger.notice("approved; answer sent")
        } else {
            state.outcome = "rejected"
            context.logger.notice("rejected\(decision.note.map { ": \($0)" } ?? "")")
        }
    }
}
