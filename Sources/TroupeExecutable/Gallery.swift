import Glibc
import Troupe
import TroupeAgents
import TroupeCLI
import TroupeHTTP
import TroupeHTTPTesting

/// The gallery: the blueprints of `agents/` that the `troupe` binary runs by name. It lives with the executable,
/// so that the operator CLI (`TroupeCLI`) links neither the gallery nor libcurl.
enum Gallery {
    /// The parameters of the blueprints that talk to a chat model (`llm-chat`, `approval`).
    static let chatParameters: [BlueprintEntry.Parameter] = [
        .init("model", default: "gpt-4o-mini", help: "The model."),
        .init("base-url", default: "", help: "The API base URL (or $OPENAI_BASE_URL); empty: a loopback stub."),
        .init("api-key-env", default: "OPENAI_API_KEY", help: "The environment variable holding the key (the key itself is never a parameter: parameters are stored)."),
    ]

    /// The chat endpoint ``chatParameters`` name.
    static func chatEndpoint(_ parameters: Parameters) -> LLMChat.Endpoint {
        let given = parameters.string("base-url")
        let configured = given.isEmpty ? (getenv("OPENAI_BASE_URL").map { String(cString: $0) } ?? "") : given
        let base = configured.isEmpty ? ServiceURL.offline(OfflineServices.sharedChat, path: "/v1") : ServiceURL(configured)
        let key = getenv(parameters.string("api-key-env")).map { String(cString: $0) }
        return LLMChat.Endpoint(baseURL: base, model: parameters.string("model"), apiKey: key)
    }

    /// The HTTP client of the runs this process starts (`context.http`).
    static let http = HTTPClient()

    /// The blueprints of `agents/`. Those that talk HTTP serve their own data on loopback unless given a URL; the
    /// loopback server starts when an agent first uses it, never when a blueprint is built.
    static let entries: [BlueprintEntry] = [
        BlueprintEntry(
            "fetch-many",
            summary: "Fetch `count` URLs with at most `concurrency` in flight; gather every result and every error.",
            parameters: [
                .init("count", default: "100", help: "How many URLs (BASE/item/1 … BASE/item/COUNT).", kind: .integer(1...1_000_000)),
                .init("concurrency", default: "8", help: "Requests in flight at most.", kind: .integer(1...10_000)),
                .init("base", default: "", help: "The server; empty: a loopback server in this process."),
            ],
            result: "fetcher"
        ) { parameters in
            let given = parameters.string("base")
            let base = given.isEmpty ? ServiceURL.offline(OfflineServices.sharedCatalog) : ServiceURL(given)
            let paths = (1...(try parameters.int("count"))).map { "/item/\($0)" }
            let concurrency = try parameters.int("concurrency")
            return Blueprint("fetch-many", durability: .checkpointed) {
                Child("fetcher", FetchMany(base: base, paths: paths, maxConcurrency: concurrency), restart: .transient)
            }
        },
        BlueprintEntry(
            "market-monitor",
            summary: "Poll quotes every `interval`, process each snapshot concurrently, checkpoint; resumes after kill -9.",
            parameters: [
                .init("symbols", default: "ACME,GLOBEX,INITECH,UMBRELLA", help: "Comma-separated symbols."),
                .init("interval", default: "1s", help: "Time between polls.", kind: .duration(.milliseconds(10)...(.seconds(86_400)))),
                .init("threshold", default: "0.05", help: "Relative move worth reporting.", kind: .number(0.0001...100)),
                .init("endpoint", default: "", help: "The quotes URL; empty: a loopback server in this process."),
            ],
            result: "monitor"
        ) { parameters in
            let given = parameters.string("endpoint")
            let endpoint = given.isEmpty ? ServiceURL.offline(OfflineServices.sharedMarket, path: "/quotes") : ServiceURL(given)
            let threshold = try parameters.number("threshold")
            let symbols = parameters.string("symbols").split(separator: ",").map(String.init)
            let interval = try parameters.duration("interval")
            return Blueprint("market-monitor", durability: .durable) {
                Child("monitor", MarketMonitor(endpoint: endpoint, symbols: symbols, every: interval, threshold: threshold))
            }
        },
        BlueprintEntry(
            "batch-stream",
            summary: "A producer streaming batches → transformer → sink over mailboxes with backpressure.",
            parameters: [
                .init("batches", default: "100", help: "Batches the producer sends.", kind: .integer(1...100_000_000)),
                .init("size", default: "1000", help: "Items per batch.", kind: .integer(1...1_000_000)),
            ]
        ) { parameters in
            let batches = try parameters.int("batches")
            let size = try parameters.int("size")
            // Each stage ends once its share is done, so the run completes.
            return Blueprint("batch-stream", strategy: .restForOne) {
                Child("sink", BatchSink(count: batches), restart: .transient, options: AgentOptions(mailboxCapacity: 4))
                Child(
                    "transformer",
                    BatchTransformer(to: "sink", count: batches),
                    restart: .transient,
                    options: AgentOptions(mailboxCapacity: 4)
                )
                Child(
                    "producer",
                    BatchProducer(count: batches, size: size, to: "transformer", stayUp: false),
                    restart: .transient
                )
            }
        },
        BlueprintEntry(
            "llm-chat",
            summary: "Ask an OpenAI-compatible chat endpoint, streaming tokens, within a token budget.",
            parameters: [
                .init("prompt", default: "What does Troupe do?", help: "Prompts, separated by '|'."),
                .init("budget", default: "200", help: "Tokens the run may receive in all.", kind: .integer(1...100_000_000)),
            ] + chatParameters,
            result: "chat"
        ) { parameters in
            let endpoint = chatEndpoint(parameters)
            let prompts = parameters.string("prompt").split(separator: "|").map(String.init)
            let budget = try parameters.int("budget")
            return Blueprint("llm-chat", durability: .checkpointed) {
                Child("chat", LLMChat(endpoint: endpoint, prompts: prompts, tokenBudget: budget), restart: .transient)
            }
        },
        BlueprintEntry(
            "approval",
            summary: "Draft an answer with a chat model, wait (durably) for a person's approval, then send it.",
            parameters: [
                .init("prompt", default: "What does Troupe do?", help: "What to answer."),
                .init("timeout", default: "48h", help: "How long to wait for the decision.", kind: .duration(.seconds(1)...(.seconds(365 * 86400)))),
            ] + chatParameters,
            result: "writer"
        ) { parameters in
            let endpoint = chatEndpoint(parameters)
            let writer = ApprovalWriter(endpoint: endpoint, prompt: parameters.string("prompt"), timeout: try parameters.duration("timeout"))
            return Blueprint("approval", durability: .durable) { Child("writer", writer, restart: .transient) }
        },
        BlueprintEntry(
            "counting",
            summary: "A durable pipeline (source → relay → counter) that counts to `count`; kill it and resume it.",
            parameters: [
                .init("count", default: "1000000", help: "How many numbers the source emits.", kind: .integer(1...1_000_000_000_000)),
                .init("interval", default: "100ms", help: "The pause after each batch of 25 numbers.", kind: .duration(.zero...(.seconds(3600)))),
            ],
            result: "counter"
        ) { parameters in
            Counting.blueprint(count: try parameters.int("count"), interval: try parameters.duration("interval"))
        },
        BlueprintEntry(
            "fleet",
            summary: "A pool of `workers` durable agents that count `work` messages and crash on `fail` ones; mostly idle.",
            parameters: [.init("workers", default: "1000", help: "How many workers.", kind: .integer(1...10_000_000))]
        ) { parameters in
            let workers = try parameters.int("workers")
            return Blueprint("fleet", durability: .durable) { Pool("worker", Fleet.Worker(), count: workers) }
        },
        BlueprintEntry(
            "demo",
            summary: "The demo tree: monitor, batch pipeline with an injected crash, gatherer, cruncher, driver; completes."
        ) { _ in
            Demo.blueprint(http: http)
        },
    ]
}
