/// The way back to a caller waiting in ``AgentContext/call(_:timeout:_:)-(String,_,_)``: put one in a message case, and answer it
/// from the handler.
///
/// ```swift
/// enum Message: Codable, Sendable { case get(Reply<Int>) }
/// // handler:
/// case .get(let reply): reply(state.total)
/// // caller:
/// let total = try await context.call("counter", timeout: .seconds(1)) { .get($0) }
/// ```
///
/// A reply is answered at most once; later answers are ignored. It is `Codable` so that messages carrying it stay
/// `Codable`, but it only works within the process that made it: a reply decoded from storage (a message
/// redelivered after the process restarted) is *detached*, and answering it does nothing, because its caller is
/// gone.
public struct Reply<Value: Sendable>: Sendable, Codable {
    let slot: OneShot<Result<Value, TroupeError>>?

    init(_ slot: OneShot<Result<Value, TroupeError>>) { self.slot = slot }

    /// A reply that nobody waits for.
    public static var detached: Reply { Reply(slot: nil) }

    private init(slot: OneShot<Result<Value, TroupeError>>?) { self.slot = slot }

    /// Whether a caller in this process may still be waiting for the answer.
    public var isDetached: Bool { slot == nil }

    /// Answers the caller.
    public func callAsFunction(_ value: Value) {
        slot?.fulfill(.success(value))
    }

    /// Answers the caller with an error; its `call` throws ``TroupeError/Code/noReply`` carrying `reason`.
    public func fail(_ reason: String) {
        slot?.fulfill(.failure(TroupeError(.noReply, reason)))
    }

    public init(from decoder: any Decoder) throws {
        _ = try decoder.singleValueContainer()
        self.slot = nil
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encodeNil()
    }
}

/// What ``AgentContext/step(_:_:)`` tells the call it runs.
public struct DurableStep: Sendable, Hashable {
    /// The step's name.
    public var name: String
    /// A key that stays the same for every attempt of this step (across crashes and restarts) and differs between
    /// steps: send it to services that deduplicate (an `Idempotency-Key` header, for instance).
    public var idempotencyKey: String
}
