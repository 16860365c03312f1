public import Troupe
import FoundationEssentials
import Logging
import TroupeHTTP

/// Asks an OpenAI-compatible chat-completions endpoint a list of prompts, streaming each answer's tokens, and stops
/// when the run's token budget is spent.
///
/// The API key lives in the agent's configuration only: it is sent as a header, never logged, never part of the
/// checkpointed state (which keeps the answers and the tokens used, so a resumed run neither asks again what was
/// answered nor exceeds the budget). Retries of 429/503 come from the HTTP client.
public struct LLMChat: Agent {
    public struct State: AgentState {
        /// Prompts answered so far.
        public var answered = 0
        /// Tokens received so far, across prompts.
        public var tokens = 0
        /// The answers, in prompt order.
        public var answers: [String] = []
        /// Whether the budget ran out.
        public var budgetExhausted = false
        public init() {}
    }

    /// Where and how to ask.
    public struct Endpoint: Sendable {
        /// The API's base URL, such as `https://api.openai.com/v1`; resolved when the agent starts.
        public var baseURL: ServiceURL
        /// The model name.
        public var model: String
        /// The bearer token; `nil` for endpoints without authentication.
        public var apiKey: String?

        public init(baseURL: ServiceURL, model: String, apiKey: String?) {
            self.baseURL = baseURL
            self.model = model
            self.apiKey = apiKey
        }
    }

    let endpoint: Endpoint
    let prompts: [String]
    let tokenBudget: Int
    let onToken: @Sendable (String) -> Void
    let onDone: @Sendable (State) -> Void

    /// - Parameters:
    ///   - endpoint: Base URL, model and key.
    ///   - prompts: Asked in order.
    ///   - tokenBudget: Tokens the whole run may receive; the stream in progress is cut when it is reached.
    ///   - onToken: Called with each token as it streams in.
    ///   - onDone: Called with the final state.
    public init(
        endpoint: Endpoint,
        prompts: [String],
        tokenBudget: Int,
        onToken: @escaping @Sendable (String) -> Void = { _ in },
        onDone: @escaping @Sendable (State) -> Void = { _ in }
    ) {
        self.endpoint = endpoint
        self.prompts = prompts
        self.tokenBudget = tokenBudget
        self.onToken = onToken
        self.onDone = onDone
    }

    struct ChatRequest: Encodable {
        struct Message: Encodable {
            var role: String
            var content: String
        }
        var model: String
        var messages: [Message]
        var stream = true
    }

    struct Chunk: Decodable {
        struct Choice: Decodable {
            struct Delta: Decodable { var content: String? }
            var delta: Delta
        }
        var choices: [Choice]
    }

    public func run(state: inout State, context: AgentContext<Self>) async throws {
        let baseURL = try endpoint.baseURL.resolve()
        while state.answered < prompts.count, !state.budgetExhausted, !context.isStopping {
            var request = try HTTPRequest.post(
                baseURL + "/chat/completions",
                json: ChatRequest(model: endpoint.model, messages: [.init(role: "user", content: prompts[state.answered])])
            )
            request.headers.append(("Accept", "text/event-stream"))
            if let key = endpoint.apiKey { request.headers.append(("Authorization", "Bearer \(key)")) }
            let response = try await context.http.stream(request)
            var answer = ""
            for try await event in ServerSentEvents(response.body) {
                if event.data == "[DONE]" { break }
                guard let chunk = try? JSONDecoder().decode(Chunk.self, from: Data(event.data.utf8)),
                    let token = chunk.choices.first?.delta.content
                else { continue }
                answer += token
                state.tokens += 1
                onToken(token)
                if state.tokens >= tokenBudget {
                    state.budgetExhausted = true
                    break  // leaving the loop drops the stream, which aborts the transfer
                }
            }
            state.answers.append(answer)
            state.answered += 1
            try await context.checkpoint(state)
            context.logger.info("answered prompt \(state.answered) of \(prompts.count); \(state.tokens) tokens used")
        }
        if state.budgetExhausted { context.logger.notice("token budget of \(tokenBudget) spent; stopping") }
        onDone(state)
    }
}
