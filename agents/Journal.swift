public import Troupe

/// An async resource with an explicit close: the tutorial's async context manager.
public actor JournalFile {
    public private(set) var lines: [String] = []
    public private(set) var isOpen = true
    public private(set) var closedBecause: String?

    public init() {}

    public func write(_ line: String) throws {
        guard isOpen else { throw ClosedError() }
        lines.append(line)
    }

    public func close(because reason: String) {
        isOpen = false
        closedBecause = reason
    }

    public struct ClosedError: Error {}
}

/// Writes messages to a journal it opens at start and closes on every exit path: normal return, thrown error,
/// cancellation and shutdown, through the engine's `setUp`/`tearDown` hooks.
public struct Journal: Agent {
    public typealias Resources = JournalFile

    public enum Message: Codable, Sendable {
        case write(String)
        case fail
        case finish
    }

    public struct Failure: Error {}

    let open: @Sendable () async throws -> JournalFile

    /// - Parameter open: Opens the journal for one incarnation.
    public init(open: @escaping @Sendable () async throws -> JournalFile) {
        self.open = open
    }

    public func setUp(context: AgentContext<Self>) async throws -> JournalFile {
        try await open()
    }

    public func run(state: inout Stateless, context: AgentContext<Self>) async throws {
        for await message in context.messages {
            switch message {
            case .write(let line): try await context.resources.write(line)
            case .fail: throw Failure()
            case .finish: return
            }
        }
    }

    public func tearDown(_ journal: JournalFile, reason: ExitReason, context: AgentContext<Self>) async {
        await journal.close(because: "\(reason)")
    }
}
