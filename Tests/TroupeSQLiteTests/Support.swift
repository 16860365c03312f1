import Foundation
import Logging
import Troupe
import TroupeSQLite
import TroupeTestKit
import TroupeTestSupport

/// A fresh directory for one test's database files, removed afterwards.
struct TemporaryDirectory: ~Copyable {
    let path: String

    init() throws {
        path = scratchRoot + "troupe-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String = "troupe.db") -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Opens a store at `path`, runs `body`, and closes the store.
func withStore<T>(
    _ path: String,
    _ configuration: SQLiteStore.Configuration = .init(),
    _ body: (SQLiteStore) async throws -> T
) async throws -> T {
    let store = try await SQLiteStore(path: path, configuration: configuration)
    do {
        let result = try await body(store)
        await store.close()
        return result
    } catch {
        await store.close()
        throw error
    }
}

let quiet: Logger = {
    var logger = Logger(label: "troupe.tests", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()

extension Run.Configuration {
    static func test(_ store: any CheckpointStore) -> Run.Configuration {
        Run.Configuration(store: store, logger: quiet)
    }
}

/// Adds numbers; crashes on negative ones; answers `total` calls.
struct Adder: HandlerAgent {
    struct State: AgentState { var total = 0 }
    enum Message: Codable, Sendable {
        case add(Int)
        case total(Reply<Int>)
    }
    struct Negative: Error {}

    func handle(_ message: Message, state: inout State, context: AgentContext<Self>) async throws {
        switch message {
        case .add(let n):
            if n < 0 { throw Negative() }
            state.total += n
        case .total(let reply):
            reply(state.total)
        }
    }
}

/// Bytes of a file, to check that a refused database was left untouched.
func contents(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }
