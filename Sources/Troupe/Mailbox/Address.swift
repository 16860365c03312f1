/// A typed handle to one agent's mailbox, resolved once and used for many sends.
///
/// Sending by name (``AgentContext/send(_:to:)-(_,String)``) looks the name up on every call; an `Address` skips that, which
/// matters on hot paths. An address stays valid across restarts of its agent, because the mailbox belongs to the
/// agent's name, not to one incarnation. If the agent is deleted, sends throw
/// ``TroupeError/Code/addressStopped``.
///
/// ```swift
/// let sink = try context.address(of: "sink", as: Sink.Message.self)
/// for item in items { try await sink.send(.item(item)) }
/// ```
///
/// An address that a ``Durability/durable`` agent gets from its own context (``AgentContext/address(of:as:)``,
/// ``AgentContext/address``) sends the way ``AgentContext/send(_:to:)-(_,String)`` does for that agent: the message joins
/// the agent's unit of work and is delivered only when the agent commits, exactly once. Keep such an address to
/// that agent; handed to another agent, its sends would still join the first agent's unit of work.
public struct Address<Message: Sendable>: Sendable, Hashable, CustomStringConvertible {
    @usableFromInline let mailbox: Mailbox<Message>
    /// Set on addresses a durable agent got from its context: sends are staged in that agent's outbox.
    @usableFromInline let stage: (@Sendable (Message) throws -> Void)?

    init(_ mailbox: Mailbox<Message>, stage: (@Sendable (Message) throws -> Void)? = nil) {
        self.mailbox = mailbox
        self.stage = stage
    }

    /// The agent's name within its run.
    public var name: String { mailbox.name }

    /// How many messages are waiting (queued, plus senders parked on a full mailbox).
    public var depth: Int { mailbox.depth }

    public var description: String { "Address(\(name))" }

    /// Sends `message`, suspending while the mailbox is full.
    ///
    /// - Throws: ``TroupeError/Code/addressStopped`` if the agent is stopped, or `CancellationError` if the
    ///   sending task is cancelled while waiting for room (the message is then not delivered).
    @inlinable
    public func send(_ message: Message) async throws {
        if let stage { return try stage(message) }
        try await mailbox.send(message)
    }

    /// Sends every message in order, taking the mailbox's lock once per run of messages that fit.
    ///
    /// The fastest way to hand over many messages; backpressure applies as with ``send(_:)``.
    /// - Throws: As ``send(_:)``. Messages before the failing one have been delivered.
    @inlinable
    public func send(contentsOf messages: some Sequence<Message>) async throws {
        if let stage {
            for message in messages { try stage(message) }
            return
        }
        try await mailbox.send(contentsOf: messages)
    }

    /// Sends `message` only if the mailbox has room.
    ///
    /// - Returns: `false` if the mailbox is full (the message is not delivered).
    /// - Throws: ``TroupeError/Code/addressStopped`` if the agent is stopped.
    @discardableResult
    @inlinable
    public func trySend(_ message: Message) throws -> Bool {
        if let stage {
            try stage(message)
            return true
        }
        return try mailbox.trySend(message)
    }

    public static func == (lhs: Address, rhs: Address) -> Bool { lhs.mailbox === rhs.mailbox }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(mailbox)) }
}
