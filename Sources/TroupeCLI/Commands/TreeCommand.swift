import ArgumentParser
import FoundationEssentials
import Troupe

struct TreeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree",
        abstract: "Show a run's supervision tree: each agent's status, incarnation, restarts, mailbox, last checkpoint and error.",
        discussion: """
            The shape, incarnations and mailbox depths come from the snapshot the driving process publishes when \
            the tree changes (and every few seconds while mailboxes fill or drain; its age is shown); epochs, \
            checkpoints and errors come from the agents' rows.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The run.", completion: Completion.runs)
    var run: String

    func run() async throws {
        try await reportingErrors {
            let (summary, snapshot, nodes) = try await global.withStore(readOnly: true) { store in
                let id = RunID(try await resolveRun(run, in: store))
                return (try await store.run(id), try await store.treeSnapshot(of: id), try await Documents.tree(of: id, in: store))
            }
            if global.json { return printJSON(nodes) }
            say("\(summary.id) (\(summary.blueprint), \(summary.status.rawValue))"
                + (snapshot.map { ", snapshot \(age($0.at)) old" } ?? ""))
            var rowsOut: [[String]] = []
            func walk(_ nodes: [Documents.TreeNodeReport], _ prefix: String) {
                for (index, node) in nodes.enumerated() {
                    let last = index == nodes.count - 1
                    let branch = prefix + (last ? "└─ " : "├─ ")
                    let mailbox = node.storedMessages.map { "\(node.mailboxDepth) (\($0) stored)" } ?? String(node.mailboxDepth)
                    rowsOut.append([
                        branch + node.name, node.status + (node.waiting.map { " " + waitingText($0) } ?? ""), "#\(node.incarnation)", node.epoch.map(String.init) ?? "-",
                        String(node.restarts), mailbox, node.lastCheckpoint.map { "#\($0)" } ?? "-",
                        node.lastError.map { String($0.prefix(60)) } ?? "",
                    ])
                    walk(node.children, prefix + (last ? "   " : "│  "))
                }
            }
            walk(nodes, "")
            printTable(["AGENT", "STATUS", "INCARNATION", "EPOCH", "RESTARTS", "MAILBOX", "CHECKPOINT", "LAST ERROR"], rowsOut)
        }
    }
}
