/// An error raised by the engine: what went wrong, where, and what to do about it.
///
/// Compare errors by ``code``; the ``message`` is for people and may change between releases.
///
/// ```swift
/// do {
///     try await context.send(.ping, to: "pinger")
/// } catch let error as TroupeError where error.code == .unknownAddress {
///     // nobody is registered under that name
/// }
/// ```
public struct TroupeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of an error. New codes may be added in later releases.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String, Hashable, Sendable {
            case unknownAddress
            case addressStopped
            case wrongMessageType
            case duplicateName
            case timeout
            case noReply
            case unknownChild
            case childNotStopped
            case childRunning
            case childRestarting
            case escalated
            case fenced
            case corruptCheckpoint
            case invalidSpec
            case notRunning
            case futureSchema
            case schemaMismatch
            case notADatabase
            case busy
            case storage
            case leaseHeld
            case quarantined
            case unknownRun
            case unknownBlueprint
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        public var description: String { value.rawValue }

        /// No agent is registered under the name a message was sent to.
        public static let unknownAddress = Code(.unknownAddress)
        /// The recipient exists but is stopped (terminated, exited, or deleted) and accepts no messages.
        public static let addressStopped = Code(.addressStopped)
        /// The recipient's message type is not the type that was sent.
        public static let wrongMessageType = Code(.wrongMessageType)
        /// Two children in one run share a name.
        public static let duplicateName = Code(.duplicateName)
        /// A request/reply call was not answered within its timeout.
        public static let timeout = Code(.timeout)
        /// The recipient of a call dropped the reply without answering.
        public static let noReply = Code(.noReply)
        /// A supervisor has no child of that name.
        public static let unknownChild = Code(.unknownChild)
        /// The operation needs a stopped child, and the child is running.
        public static let childRunning = Code(.childRunning)
        /// The child is waiting to start or being stopped for a restart; an operator request that needs it
        /// settled is refused (OTP's `{error, restarting}`). Retry once it runs.
        public static let childRestarting = Code(.childRestarting)
        /// The operation needs a running child, and the child is stopped.
        public static let childNotStopped = Code(.childNotStopped)
        /// A supervisor exceeded its restart intensity and gave up.
        public static let escalated = Code(.escalated)
        /// A checkpoint came from an incarnation that is no longer current and was rejected.
        public static let fenced = Code(.fenced)
        /// A checkpoint could not be decoded into the agent's state.
        public static let corruptCheckpoint = Code(.corruptCheckpoint)
        /// A blueprint or child specification is malformed.
        public static let invalidSpec = Code(.invalidSpec)
        /// The run or supervisor is not running.
        public static let notRunning = Code(.notRunning)
        /// The database was written by a newer Troupe (it has migrations this one does not know); it was left
        /// untouched.
        public static let futureSchema = Code(.futureSchema)
        /// An applied migration differs from the one this Troupe carries, or the file is another program's
        /// SQLite database; it was left untouched.
        public static let schemaMismatch = Code(.schemaMismatch)
        /// The file at the database path is not a SQLite database, or is damaged.
        public static let notADatabase = Code(.notADatabase)
        /// Another process held the database's write lock past the busy timeout. Safe to retry.
        public static let busy = Code(.busy)
        /// The database could not be written: disk full, read-only file system, or an I/O error.
        public static let storage = Code(.storage)
        /// Another live process drives this run.
        public static let leaseHeld = Code(.leaseHeld)
        /// An agent was set aside because its checkpoint cannot be read; the checkpoint is kept.
        public static let quarantined = Code(.quarantined)
        /// No run has that identifier.
        public static let unknownRun = Code(.unknownRun)
        /// No blueprint has that name.
        public static let unknownBlueprint = Code(.unknownBlueprint)
    }

    /// What kind of error this is.
    public var code: Code
    /// What went wrong, where, and what to do: written for the person reading the log.
    public var message: String
    /// The error that caused this one, if any.
    public var underlying: (any Error)?

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - code: The kind of error.
    ///   - message: A sentence saying what went wrong, where, and what to do.
    ///   - underlying: The error that caused this one.
    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        guard let underlying else { return message }
        return "\(message) (caused by: \(underlying))"
    }

    public static func == (lhs: TroupeError, rhs: TroupeError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}

extension TroupeError {
    static func unknownAddress(_ name: String) -> TroupeError {
        TroupeError(
            .unknownAddress,
            "no agent is registered as '\(name)'. Check the name against the blueprint's children "
                + "(pool members are 'NAME-0', 'NAME-1', …; the pool itself is 'NAME')."
        )
    }

    static func addressStopped(_ name: String) -> TroupeError {
        TroupeError(
            .addressStopped,
            "agent '\(name)' is stopped and accepts no messages. Restart it (Supervisor.restartChild) "
                + "before sending to it."
        )
    }

    @usableFromInline
    static func durableTrySend(_ name: String) -> TroupeError {
        TroupeError(
            .invalidSpec,
            "agent '\(name)' is durable: a message to it must be stored before it counts as sent, which `trySend` "
                + "cannot wait for. Use `send`."
        )
    }

    static func wrongMessageType(_ name: String, expected: Any.Type, got: Any.Type) -> TroupeError {
        TroupeError(
            .wrongMessageType,
            "agent '\(name)' takes messages of type \(expected), but a \(got) was sent. "
                + "Send one of its own message cases."
        )
    }
}
