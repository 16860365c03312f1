import ArgumentParser
import Foundation

/// What the shell completion scripts (`troupe --generate-completion-script bash|zsh|fish`) offer: run ids and agent
/// names read from the store the command line names (by running this binary's own `ps -q` and `tree --json`),
/// blueprint names, and a blueprint's `--param` keys.
enum Completion {
    /// Run ids, newest first.
    static let runs = CompletionKind.custom { words, _, prefix in
        lines(of: ["ps", "-q"] + storeOptions(in: words)).filter { $0.hasPrefix(prefix) }
    }

    /// The agents of the run named before them.
    static let agents = CompletionKind.custom { words, index, prefix in
        guard let run = positionals(in: words, before: index).first,
            let data = output(of: ["tree", run, "--json"] + storeOptions(in: words)),
            let nodes = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]]
        else { return [] }
        var names: [String] = []
        func walk(_ nodes: [[String: Any]]) {
            for node in nodes {
                if let name = node["name"] as? String, node["type"] as? String != "Supervisor" { names.append(name) }
                walk(node["children"] as? [[String: Any]] ?? [])
            }
        }
        walk(nodes)
        return names.filter { $0.hasPrefix(prefix) }
    }

    /// The blueprints this binary can run.
    static let blueprints = CompletionKind.custom { _, _, prefix in
        Catalog.entries.map(\.name).filter { $0.hasPrefix(prefix) }
    }

    /// `KEY=` for each parameter of the blueprint named on the command line.
    static let parameters = CompletionKind.custom { words, index, prefix in
        guard let name = positionals(in: words, before: index).first, let entry = Catalog.entries.first(where: { $0.name == name })
        else { return [] }
        return entry.parameters.map { "\($0.name)=" }.filter { $0.hasPrefix(prefix) }
    }

    /// Options that take a value: their value is not a positional argument.
    static let valued: Set<String> = [
        "--database", "--busy-timeout", "--retain", "--log-level", "--param", "--durability", "--since", "--tail",
        "--kind", "--agent", "--limit", "--status", "--blueprint", "--history", "--grace", "--reason", "--show",
        "--from", "--id", "--metrics", "--level", "--for", "--timeout", "--capacity", "--tag", "--build", "--host",
        "--port", "--token",
    ]

    /// The positional words after the verb, before the word being completed.
    static func positionals(in words: [String], before index: Int) -> [String] {
        var result: [String] = []
        var verbSeen = false
        var skip = false
        for (position, word) in words.enumerated().dropFirst() where position < index {
            if skip {
                skip = false
                continue
            }
            if word.hasPrefix("-") {
                skip = valued.contains(word)
                continue
            }
            if verbSeen { result.append(word) } else { verbSeen = true }
        }
        return result
    }

    /// `--database VALUE` as the command line gives it (else the environment's or the default store is used).
    static func storeOptions(in words: [String]) -> [String] {
        for (index, word) in words.enumerated() {
            if word == "--database", index + 1 < words.count { return ["--database", words[index + 1]] }
            if word.hasPrefix("--database=") { return [word] }
        }
        return []
    }

    static func lines(of arguments: [String]) -> [String] {
        guard let data = output(of: arguments) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    /// This binary's output for `arguments`, or `nil` if it failed. Completion runs in a short-lived process of
    /// its own that the shell waits for, so waiting here blocks nothing else.
    static func output(of arguments: [String]) -> Data? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus == 0 ? data : nil
    }
}
