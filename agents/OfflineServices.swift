import FoundationEssentials
import TroupeHTTP
public import TroupeHTTPTesting

/// Loopback stand-ins for the services the HTTP agents talk to, so that `troupe run` and the demo work offline.
/// Each serves 127.0.0.1 only. The shared ones (``sharedCatalog`` and the others) start on first use and then live as
/// long as the process; the functions start a fresh server at once (for tests that want their own).
public enum OfflineServices {
    /// The process's ``catalog()``, started the first time an agent resolves a URL on it.
    public static let sharedCatalog = LazyLoopbackServer { try catalog() }
    /// The process's ``market()``, started the first time an agent resolves a URL on it.
    public static let sharedMarket = LazyLoopbackServer { try market() }
    /// The process's ``chat(answer:)``, started the first time an agent resolves a URL on it.
    public static let sharedChat = LazyLoopbackServer { try chat() }

    /// `/item/N`: N bytes; every 10th item answers 500 and every 7th 404, so that a fetch has errors to gather.
    public static func catalog() throws -> LoopbackServer {
        try LoopbackServer { request in
            guard request.path.hasPrefix("/item/"), let n = Int(request.path.dropFirst(6)) else { return .respond(status: 404) }
            if n % 10 == 0 { return .respond(status: 500, body: Array("item \(n) is broken".utf8)) }
            if n % 7 == 0 { return .respond(status: 404) }
            return .respond(status: 200, body: [UInt8](repeating: 65, count: n))
        }
    }

    /// `/quotes?symbols=A,B&poll=N`: a deterministic price for each symbol at each poll, moving a few percent.
    public static func market() throws -> LoopbackServer {
        try LoopbackServer { request in
            let query = request.path.split(separator: "?").dropFirst().first.map(String.init) ?? ""
            var fields: [String: String] = [:]
            for pair in query.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
            }
            let poll = Int(fields["poll"] ?? "") ?? 1
            let symbols = (fields["symbols"] ?? "").split(separator: ",").map(String.init)
            let quotes = symbols.enumerated().map { index, symbol in
                MarketMonitor.Quote(symbol: symbol, price: price(poll: poll, index: index))
            }
            let body = (try? JSONEncoder().encode(quotes)).map(Array.init) ?? Array("[]".utf8)
            return .respond(status: 200, headers: [("Content-Type", "application/json")], body: body)
        }
    }

    /// The price the offline market quotes for the `index`-th symbol at `poll`.
    public static func price(poll: Int, index: Int) -> Double {
        let steps = [0.0, 0.03, -0.02, 0.07, -0.06, 0.01, 0.0, 0.05]
        return (100 * (1 + steps[(poll + index * 3) % steps.count]) * 100).rounded() / 100
    }

    /// An OpenAI-compatible `/chat/completions` that streams `answer` word by word as server-sent events.
    public static func chat(answer: String = "Troupe agents resume from their last checkpoint after a crash.") throws -> LoopbackServer {
        try LoopbackServer { request in
            guard request.method == "POST", request.path.hasSuffix("/chat/completions") else { return .respond(status: 404) }
            let words = answer.split(separator: " ").enumerated().map { index, word in index == 0 ? String(word) : " " + word }
            var chunks: [(delay: Duration, bytes: [UInt8])] = words.map { word in
                struct Chunk: Encodable {
                    struct Choice: Encodable { var delta: [String: String] }
                    var choices: [Choice]
                }
                let json = (try? JSONEncoder().encode(Chunk(choices: [.init(delta: ["content": word])]))) ?? Data()
                return (.milliseconds(2), Array("data: ".utf8) + Array(json) + Array("\n\n".utf8))
            }
            chunks.append((.zero, Array("data: [DONE]\n\n".utf8)))
            return .stream(status: 200, headers: [("Content-Type", "text/event-stream")], chunks: chunks)
        }
    }
}
