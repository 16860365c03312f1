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

    @Argument(help: "The run.")
    var run: String

    struct Node: Encodable {
        var name: String
        var type: String
        var status: String
        var incarnation: UInt64
        var epoch: UInt64?
        var restarts: Int
        var mailboxDepth: Int
        var storedMessages: Int?
        var lastCheckpoint: UInt64?
        var lastCheckpointAt: String?
        var lastError: String?
        var children: [Node]
    }

    func run() async throws {
        try await reportingErrors {
            let (summary, agents, snapshot) = try await global.withStore(readOnly: true) { store in
                let id = RunID(try await resolveRun(run, in: store))
                let summary = try await store.run(id)
                return (summary, try await store.agents(of: id), try await store.treeSnapshot(of: id))
            }
            let rows = Dictionary(agents.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            let tree = snapshot?.nodes ?? []
            func node(_ tree: TreeNode) -> Node {
                let row = rows[tree.name]
                // A live snapshot knows the status best; once the process is gone, the agents' rows do.
                let status = summary.isDriven ? tree.status.rawValue : (row?.status.rawValue ?? tree.status.rawValue)
                return Node(
                    name: tree.name, type: tree.type, status: status, incarnation: tree.incarnation, epoch: row?.epoch,
                    restarts: max(tree.restarts, row?.restarts ?? 0), mailboxDepth: tree.mailboxDepth,
                    storedMessages: row?.pendingMessages, lastCheckpoint: row?.lastCheckpoint,
                    lastCheckpointAt: row?.lastCheckpointAt.map(timestamp), lastError: row?.lastError,
                    children: tree.children.map(node)
                )
            }
            var nodes = tree.map(node)
            if nodes.isEmpty {
                // No snapshot (a run from before snapshots, or one that never started): list the agents' rows.
                nodes = agents.map {
                    Node(
                        name: $0.name, type: $0.type, status: $0.status.rawValue, incarnation: 0, epoch: $0.epoch,
                        restarts: $0.restarts, mailboxDepth: 0, storedMessages: $0.pendingMessages,
                        lastCheckpoint: $0.lastCheckpoint, lastCheckpointAt: $0.lastCheckpointAt.map(timestamp),
                        lastError: $0.lastError, children: []
                    )
                }
            }
            if global.json { return printJSON(nodes) }
            say("\(summary.id) (\(summary.blueprint), \(summary.status.rawValue))"
                + (snapshot.map { ", snapshot \(age($0.at)) old" } ?? ""))
            var rowsOut: [[String]] = []
            func walk(_ nodes: [Node], _ prefix: String) {
                for (index, node) in nodes.enumerated() {
                    let last = index == nodes.count - 1
                    let branch = prefix + (last ? "└─ " : "├─ ")
                    let mailbox = node.storedMessages.map { "\(node.mailboxDepth) (\($0) stored)" } ?? String(node.mailboxDepth)
                    rowsOut.append([
                        branch + node.name, node.status, "#\(node.incarnation)", node.epoch.map(String.init) ?? "-",
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
