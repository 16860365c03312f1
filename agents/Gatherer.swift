import Logging
public import Troupe

/// Fans a batch of jobs out concurrently and gathers every result *and* every error: no failure hides the others.
///
/// The tutorial's `asyncio.gather(*jobs, return_exceptions=True)`, as an agent. At most `maxConcurrency` jobs run
/// at once; the reply lists each input's result or error.
///
/// ```swift
/// let report = try await run.call("gatherer", timeout: .seconds(30)) { Gatherer.Message.gather(urls, $0) }
/// ```
public struct Gatherer: HandlerAgent {
    public struct State: AgentState {
        /// Batches gathered so far.
        public var batches = 0
        public init() {}
    }

    public enum Message: Codable, Sendable {
        /// Runs the job on every input and replies with what each produced.
        case gather([String], Reply<Report>)
    }

    /// What a gather produced: a result or an error for every input.
    public struct Report: Codable, Sendable, Equatable {
        public var results: [String: String] = [:]
        public var errors: [String: String] = [:]
    }

    let maxConcurrency: Int
    let job: @Sendable (String) async throws -> String
    let requests: Int?

    /// - Parameters:
    ///   - maxConcurrency: How many jobs may run at once.
    ///   - job: The work to do for one input.
    ///   - requests: How many `gather` requests it answers in all (counted in its state) before it finishes
    ///     (``AgentContext/finish()``); `nil` answers until it is stopped.
    public init(maxConcurrency: Int = 16, requests: Int? = nil, job: @escaping @Sendable (String) async throws -> String) {
        precondition(maxConcurrency > 0, "maxConcurrency must be at least 1")
        self.maxConcurrency = maxConcurrency
        self.job = job
        self.requests = requests
    }

    public func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        guard case .gather(let inputs, let reply) = message else { return }
        var report = Report()
        await withTaskGroup(of: (String, Result<String, any Error>).self) { group in
            var pending = inputs.makeIterator()
            func startNext() {
                guard let input = pending.next() else { return }
                group.addTask { (input, await Result { try await job(input) }) }
            }
            for _ in 0..<maxConcurrency { startNext() }
            for await (input, outcome) in group {
                switch outcome {
                case .success(let value): report.results[input] = value
                case .failure(let error): report.errors[input] = "\(error)"
                }
                startNext()
            }
        }
        state.batches += 1
        context.logger.info("gathered \(report.results.count) results and \(report.errors.count) errors")
        reply(report)
        if let requests, state.batches >= requests { context.finish() }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
