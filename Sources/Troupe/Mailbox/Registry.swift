import Synchronization

/// A run's names: agent name → mailbox, pool name → its members, topic → subscribers.
///
/// Names are unique within a run, whatever supervisor the agent sits under, so any agent can reach any other by
/// name. The registry maps names to mailboxes, and mailboxes outlive incarnations: that is what lets a restarted
/// agent keep its address.
final class Registry: Sendable {
    private enum Entry {
        case agent(any AnyMailbox)
        case pool(any AnyPool)
    }

    private struct Names {
        var entries: [String: Entry] = [:]
        /// The names of the pools among `entries`: a tree without pools lists its agents as the keys alone.
        var pools: Set<String> = []
    }

    private let names = Mutex(Names())
    private let topics = Mutex<[String: [String: any Sendable]]>([:])

    init() {}

    func register(_ mailbox: any AnyMailbox) throws {
        try insert(.agent(mailbox), as: mailbox.name)
    }

    func registerPool<Message: Sendable>(_ name: String, members: [Mailbox<Message>]) throws {
        try insert(.pool(PoolRoute(name: name, members: members)), as: name)
    }

    private func insert(_ entry: Entry, as name: String) throws {
        try names.withLock { names in
            guard names.entries[name] == nil else {
                throw TroupeError(
                    .duplicateName,
                    "the name '\(name)' is already taken in this run. Give every child (and every pool) a name "
                        + "that is unique across the whole tree."
                )
            }
            names.entries[name] = entry
            if case .pool = entry { names.pools.insert(name) }
        }
    }

    func unregister(_ name: String) {
        names.withLock { names in
            names.entries[name] = nil
            names.pools.remove(name)
        }
        topics.withLock { topics in
            for key in topics.keys { topics[key]?[name] = nil }
        }
    }

    /// Every agent name registered (pool members included, pools themselves not).
    var agentNames: [String] {
        names.withLock { names in
            names.pools.isEmpty ? Array(names.entries.keys) : names.entries.keys.filter { !names.pools.contains($0) }
        }
    }

    /// The mailbox a message sent to `name` goes to now: the agent's, or the next pool member's.
    func resolve<Message: Sendable>(_ name: String, as type: Message.Type = Message.self) throws -> Mailbox<Message> {
        switch try route(name, for: type) {
        case .agent(let mailbox): mailbox
        case .pool(let pool): pool.pick()
        }
    }

    /// The mailbox registered as `name`, typed.
    func mailbox<Message: Sendable>(_ name: String, as type: Message.Type = Message.self) throws -> Mailbox<Message> {
        switch try route(name, for: type) {
        case .agent(let mailbox):
            return mailbox
        case .pool:
            throw TroupeError(
                .wrongMessageType,
                "'\(name)' is a pool, not a single agent. Send to it by name to spread messages over its "
                    + "members, or address one member as '\(name)-0', '\(name)-1', …"
            )
        }
    }

    /// Where a message sent to `name` goes: one agent's mailbox, or a pool's members.
    private enum Route<Message: Sendable> {
        case agent(Mailbox<Message>)
        case pool(PoolRoute<Message>)
    }

    private func route<Message: Sendable>(_ name: String, for _: Message.Type) throws -> Route<Message> {
        switch names.withLock({ $0.entries[name] }) {
        case nil:
            throw TroupeError.unknownAddress(name)
        case .agent(let mailbox):
            guard let typed = mailbox as? Mailbox<Message> else {
                throw TroupeError.wrongMessageType(name, expected: mailbox.messageType, got: Message.self)
            }
            return .agent(typed)
        case .pool(let pool):
            return .pool(try pool.typed(Message.self))
        }
    }

    func send<Message: Sendable>(_ message: Message, to name: String) async throws {
        switch try route(name, for: Message.self) {
        case .agent(let mailbox): try await mailbox.send(message)
        case .pool(let pool): try await pool.send(message)
        }
    }

    func trySend<Message: Sendable>(_ message: Message, to name: String) throws -> Bool {
        switch try route(name, for: Message.self) {
        case .agent(let mailbox): return try mailbox.trySend(message)
        case .pool(let pool): return try pool.trySend(message)
        }
    }

    /// Delivers a message from outside the run, given as JSON, to `name`: an agent, or a pool's next member
    /// (``Mailbox/accept(json:)``).
    func accept(json: [UInt8], to name: String) async throws {
        switch names.withLock({ $0.entries[name] }) {
        case nil: throw TroupeError.unknownAddress(name)
        case .agent(let mailbox): try await mailbox.accept(json: json)
        case .pool(let pool): try await pool.accept(json: json)
        }
    }

    // MARK: Topics

    private struct Subscription<Payload: Sendable>: Sendable {
        let deliver: @Sendable (Payload) async throws -> Void
    }

    func subscribe<Payload: Sendable>(
        _ subscriber: String,
        to topic: Topic<Payload>,
        deliver: @escaping @Sendable (Payload) async throws -> Void
    ) {
        topics.withLock { $0[topic.name, default: [:]][subscriber] = Subscription(deliver: deliver) }
    }

    func unsubscribe<Payload: Sendable>(_ subscriber: String, from topic: Topic<Payload>) {
        topics.withLock { $0[topic.name]?[subscriber] = nil }
    }

    /// Delivers `value` to every subscriber of `topic`, in name order; returns how many took it.
    ///
    /// Stopped subscribers are skipped; they do not stop delivery to the others.
    func publish<Payload: Sendable>(_ value: Payload, to topic: Topic<Payload>) async throws -> Int {
        let subscriptions = topics.withLock { topics -> [Subscription<Payload>] in
            guard let subscribers = topics[topic.name] else { return [] }
            return subscribers.sorted { $0.key < $1.key }.compactMap { $0.value as? Subscription<Payload> }
        }
        var delivered = 0
        for subscription in subscriptions {
            do {
                try await subscription.deliver(value)
                delivered += 1
            } catch let error as TroupeError where error.code == .addressStopped {
                continue
            }
        }
        return delivered
    }
}

private protocol AnyPool: Sendable {
    var name: String { get }
    var messageType: Any.Type { get }
    func accept(json: [UInt8]) async throws
}

extension AnyPool {
    func typed<Message: Sendable>(_: Message.Type) throws -> PoolRoute<Message> {
        guard let typed = self as? PoolRoute<Message> else {
            throw TroupeError.wrongMessageType(name, expected: messageType, got: Message.self)
        }
        return typed
    }
}

/// Spreads messages sent to a pool's name over its members, round robin, preferring a member with room.
private final class PoolRoute<Message: Sendable>: AnyPool {
    let name: String
    let members: [Mailbox<Message>]
    private let next = Atomic<Int>(0)

    init(name: String, members: [Mailbox<Message>]) {
        precondition(!members.isEmpty, "pool '\(name)' needs at least one member")
        self.name = name
        self.members = members
    }

    var messageType: Any.Type { Message.self }

    /// The member whose turn it is.
    func pick() -> Mailbox<Message> {
        members[next.wrappingAdd(1, ordering: .relaxed).oldValue % members.count]
    }

    func accept(json: [UInt8]) async throws { try await pick().accept(json: json) }

    func send(_ message: Message) async throws {
        let start = next.wrappingAdd(1, ordering: .relaxed).oldValue
        if members[0].durable != nil {
            // Durable members store before accepting; no quick try first.
            return try await members[start % members.count].send(message)
        }
        var lastError: (any Error)?
        for offset in 0..<members.count {
            do {
                if try members[(start &+ offset) % members.count].trySend(message) { return }
            } catch {
                lastError = error
            }
        }
        // Every member is full (or stopped): wait for room at the one whose turn it is.
        for offset in 0..<members.count {
            do {
                try await members[(start &+ offset) % members.count].send(message)
                return
            } catch let error as TroupeError where error.code == .addressStopped {
                lastError = error
            }
        }
        throw lastError ?? TroupeError.addressStopped(name)
    }

    func trySend(_ message: Message) throws -> Bool {
        let start = next.wrappingAdd(1, ordering: .relaxed).oldValue
        var stopped = 0
        for offset in 0..<members.count {
            do {
                if try members[(start &+ offset) % members.count].trySend(message) { return true }
            } catch {
                stopped += 1
            }
        }
        if stopped == members.count { throw TroupeError.addressStopped(name) }
        return false
    }
}
