import ArgumentParser

/// What the command line needs before argument-parser reads it: the options every verb shares may come before the
/// verb (`troupe --database x ps`), and a mistyped verb gets a suggestion.
enum Arguments {
    /// The options of ``GlobalOptions`` that take a value, and those that do not.
    static let valued: Set<String> = ["--database", "--busy-timeout", "--retain", "--log-level"]
    static let flags: Set<String> = ["--json"]

    /// `arguments` (without the program's name) with the shared options written before the verb moved after it:
    /// at the end, or before a `--` that ends the options. Anything else is left as it is.
    static func arranged(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if flags.contains(argument) {
                leading.append(argument)
                index += 1
            } else if valued.contains(name), argument.contains("=") {
                leading.append(argument)
                index += 1
            } else if valued.contains(argument), index + 1 < arguments.count {
                leading += [argument, arguments[index + 1]]
                index += 2
            } else {
                break
            }
        }
        guard !leading.isEmpty, index < arguments.count else { return arguments }
        var rest = Array(arguments[index...])
        let end = rest.firstIndex(of: "--") ?? rest.endIndex
        rest.insert(contentsOf: leading, at: end)
        return rest
    }

    /// The verb the command line names, if it names none that exists but one that is spelled nearly so: a
    /// sentence suggesting it.
    static func suggestion(for arguments: [String], verbs: [String]) -> String? {
        guard let verb = arranged(arguments).first, !verb.hasPrefix("-"), !verbs.contains(verb), verb != "help" else { return nil }
        guard let close = closest(to: verb, in: verbs) else { return nil }
        return "troupe: there is no verb '\(verb)'; did you mean '\(close)'? `troupe --help` lists them."
    }

    /// The closest of `names` to `name`, when one is spelled nearly so (for "did you mean").
    static func closest(to name: String, in names: [String]) -> String? {
        names.map { ($0, distance(name, $0)) }.filter { $0.1 <= max(1, min(2, name.count / 3)) }.min { $0.1 < $1.1 }?.0
    }

    /// The edit distance between two words (insertions, deletions, substitutions, and swaps of neighbours).
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var rows = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { rows[i][0] = i }
        for j in 0...b.count { rows[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1) }
            }
        }
        return rows[a.count][b.count]
    }
}
