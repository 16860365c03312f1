public import Troupe
import Logging
import TroupeHTTP

/// Polls quotes for a set of symbols every interval, processes each snapshot concurrently, and checkpoints, so
/// that after `kill -9` and `troupe resume` it continues with the next poll, not from the start.
///
/// The poll is a durable step: if the process dies after fetching a snapshot but before checkpointing it, the
/// resumed agent processes the same snapshot instead of fetching a new one.
public struct MarketMonitor: Agent {
    /// One quote as the endpoint returns it: `[{"symbol": "ACME", "price": 101.5}, …]`.
    public struct Quote: Codable, Sendable, Equatable {
        public var symbol: String
        public var price: Double
        public init(symbol: String, price: Double) {
            self.symbol = symbol
            self.price = price
        }
    }

    public struct State: AgentState {
        /// Polls processed and checkpointed.
        public var polls = 0
        /// The last price of each symbol.
        public var prices: [String: Double] = [:]
        /// Moves larger than the threshold seen in the last poll, such as `ACME +6.2%`.
        public var moves: [String] = []
        public init() {}
    }

    let endpoint: ServiceURL
    let symbols: [String]
    let interval: Duration
    let threshold: Double
    let maxPolls: Int?
    let onPoll: @Sendable (State) -> Void

    /// - Parameters:
    ///   - endpoint: The quotes URL, resolved when the agent starts; `?symbols=A,B&poll=N` is appended.
    ///   - symbols: The symbols to watch.
    ///   - interval: Time between polls.
    ///   - threshold: The relative move (0.05: 5 %) worth reporting.
    ///   - maxPolls: Stop after this many polls (`nil`: run until stopped).
    ///   - onPoll: Called with the state after each checkpointed poll.
    public init(
        endpoint: ServiceURL,
        symbols: [String],
        every interval: Duration,
        threshold: Double = 0.05,
        maxPolls: Int? = nil,
        onPoll: @escaping @Sendable (State) -> Void = { _ in }
    ) {
        self.endpoint = endpoint
        self.symbols = symbols
        self.interval = interval
        self.threshold = threshold
        self.maxPolls = maxPolls
        self.onPoll = onPoll
    }

    public func run(state: inout State, context: AgentContext<Self>) async throws {
        let http = context.http
        let endpoint = try self.endpoint.resolve()
        while maxPolls.map({ state.polls < $0 }) ?? true {
            // A durable timer, right after the last checkpoint: a restart or a resume (even after kill -9) wakes at
            // the deadline the interrupted sleep had, so polls keep their cadence instead of waiting a whole
            // interval again.
            if state.polls > 0 { try await context.sleep(for: interval) }
            let poll = state.polls + 1
            let url = "\(endpoint)?symbols=\(symbols.joined(separator: ","))&poll=\(poll)"
            let quotes = try await context.step("poll") { _ in try await http.execute(.get(url)).decode([Quote].self) }
            // Each symbol is looked at concurrently, as the tutorial's monitor does with its readings.
            let previous = state.prices
            let threshold = self.threshold
            let moves = await withTaskGroup(of: String?.self) { group in
                for quote in quotes {
                    group.addTask {
                        guard let before = previous[quote.symbol], before > 0 else { return nil }
                        let change = (quote.price - before) / before
                        guard abs(change) >= threshold else { return nil }
                        let percent = (change * 1000).rounded() / 10
                        return "\(quote.symbol) \(percent > 0 ? "+" : "")\(percent)%"
                    }
                }
                return await group.reduce(into: [String]()) { if let move = $1 { $0.append(move) } }
            }
            for quote in quotes { state.prices[quote.symbol] = quote.price }
            state.moves = moves.sorted()
            state.polls = poll
            try await context.checkpoint(state)
            if !state.moves.isEmpty { context.logger.notice("poll \(poll): \(state.moves.joined(separator: ", "))") }
            onPoll(state)
        }
    }
}
