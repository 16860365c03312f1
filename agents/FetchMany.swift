public import Troupe
import Logging
import TroupeHTTP

/// Fetches many URLs concurrently, at most `maxConcurrency` at a time, and gathers every result and every error:
/// no failure hides the others (the tutorial's `gather(..., return_exceptions=True)` over HTTP).
public struct FetchMany: Agent {
    public struct State: AgentState {
        /// Bytes received, by URL.
        public var results: [String: Int] = [:]
        /// Why it failed, by URL.
        public var errors: [String: String] = [:]
        /// Whether the whole set was fetched.
        public var done = false
        public init() {}
    }

    let base: ServiceURL
    let paths: [String]
    let maxConcurrency: Int
    let report: @Sendable (State) -> Void

    /// - Parameters:
    ///   - urls: What to fetch.
    ///   - maxConcurrency: Requests in flight at most.
    ///   - report: Called with the outcome once everything was fetched.
    public init(urls: [String], maxConcurrency: Int = 8, report: @escaping @Sendable (State) -> Void = { _ in }) {
        self.init(base: "", paths: urls, maxConcurrency: maxConcurrency, report: report)
    }

    /// Fetches `paths` on one service whose address is resolved when the agent starts.
    ///
    /// - Parameters:
    ///   - base: The service; each URL is its resolved address followed by a path.
    ///   - paths: What to fetch, such as `/item/1`.
    ///   - maxConcurrency: Requests in flight at most.
    ///   - report: Called with the outcome once everything was fetched.
    public init(
        base: ServiceURL,
        paths: [String],
        maxConcurrency: Int = 8,
        report: @escaping @Sendable (State) -> Void = { _ in }
    ) {
        precondition(maxConcurrency > 0, "maxConcurrency must be at least 1")
        self.base = base
        self.paths = paths
        self.maxConcurrency = maxConcurrency
        self.report = report
    }

    public func run(state: inout State, context: AgentContext<Self>) async throws {
        guard !state.done else { return report(state) }
        let http = context.http
        let prefix = try base.resolve()
        let urls = paths.map { prefix + $0 }
        let outcomes = await withTaskGroup(of: (String, Result<Int, any Error>).self) { group in
            var pending = urls[...]
            func startNext() {
                guard let url = pending.popFirst() else { return }
                group.addTask {
                    do {
                        return (url, .success(try await http.execute(.get(url)).body.count))
                    } catch {
                        return (url, .failure(error))
                    }
                }
            }
            for _ in 0..<maxConcurrency { startNext() }
            var outcomes: [(String, Result<Int, any Error>)] = []
            while let outcome = await group.next() {
                outcomes.append(outcome)
                startNext()
            }
            return outcomes
        }
        for (url, outcome) in outcomes {
            switch outcome {
            case .success(let bytes): state.results[url] = bytes
            case .failure(let error as HTTPClientError): state.errors[url] = error.status.map { "status \($0)" } ?? "\(error.code)"
            case .failure(let error): state.errors[url] = "\(error)"
            }
        }
        state.done = true
        try await context.checkpoint(state)
        context.logger.notice("fetched \(state.results.count) of \(urls.count) URLs; \(state.errors.count) failed")
        report(state)
    }
}
