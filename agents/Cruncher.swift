public import Troupe

/// Does CPU-bound work off the agents' shared threads, so that it cannot starve message handling.
///
/// Swift's cooperative pool has one thread per core; a long computation on it would stall every agent. The
/// cruncher hands the computation to ``AgentContext/offload(_:)``, which runs it on separate threads, and awaits
/// the result.
public struct Cruncher: HandlerAgent {
    public enum Message: Codable, Sendable {
        /// Computes `work(n)` and replies with it.
        case crunch(Int, Reply<Int>)
    }

    /// How many requests it has answered.
    public struct State: AgentState {
        public var answered = 0
        public init() {}
        public init(from decoder: any Decoder) throws {
            // Checkpoints from before the count (an empty object) read as 0.
            let container = try decoder.container(keyedBy: CodingKeys.self)
            answered = try container.decodeIfPresent(Int.self, forKey: .answered) ?? 0
        }
    }

    let work: @Sendable (Int) -> Int
    let requests: Int?

    /// - Parameters:
    ///   - requests: How many requests it answers in all (counted in its state) before it finishes
    ///     (``AgentContext/finish()``); `nil` answers until it is stopped.
    ///   - work: The computation; counts primes below `n` by default.
    public init(requests: Int? = nil, work: @escaping @Sendable (Int) -> Int = Cruncher.countPrimes(below:)) {
        self.work = work
        self.requests = requests
    }

    public func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        guard case .crunch(let n, let reply) = message else { return }
        let work = self.work
        reply(try await context.offload { work(n) })
        state.answered += 1
        if let requests, state.answered >= requests { context.finish() }
    }

    /// Counts the primes below `n` by trial division: deliberately CPU-bound.
    public static func countPrimes(below n: Int) -> Int {
        guard n > 2 else { return 0 }
        var count = 1
        var candidate = 3
        while candidate < n {
            var divisor = 3
            var isPrime = true
            while divisor * divisor <= candidate {
                if candidate % divisor == 0 {
                    isPrime = false
                    break
                }
                divisor += 2
            }
            if isPrime { count += 1 }
            candidate += 2
        }
        return count
    }
}
