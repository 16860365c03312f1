import Foundation
import Troupe

/// `/api/runs/RUN/timeline`: each agent's incarnations over time, read from the run's event log, and the
/// sparklines' series (checkpoints and restarts per interval).
struct Timeline: Encodable, Sendable {
    /// One incarnation: from its start to its end (`nil` while it runs).
    struct Span: Encodable, Sendable {
        var incarnation: UInt64
        var from: Date
        var to: Date?
        /// How it ended: `crashed`, `exited`, `stopped`, `cancelled`, `killed`, `abandoned`, `quarantined`; `lost`
        /// when the process died under it (the next start came with no end); `nil` while it runs.
        var ended: String?
        /// The error of a crash, the reason of another end.
        var detail: String?
    }

    /// An event that is not a start or an end: a restart scheduled, an escalation, a dead letter.
    struct Mark: Encodable, Sendable {
        var time: Date
        var event: String
        var detail: String
    }

    struct Lane: Encodable, Sendable {
        var agent: String
        var spans: [Span]
        var marks: [Mark]
    }

    /// A time with no process: from the last event before a process died to the first of the one that resumed.
    struct Gap: Encodable, Sendable {
        var from: Date
        var to: Date
    }

    /// Counts per interval, oldest first: sixty intervals of `bucketSeconds` up to `to`.
    struct Series: Encodable, Sendable {
        var bucketSeconds: Double
        var restarts: [Int]
        var crashes: [Int]
    }

    var run: RunID
    var from: Date
    var to: Date
    var lanes: [Lane]
    var gaps: [Gap]
    var series: Series
    /// Whether older events were left out (a timeline reads the newest 50,000).
    var truncated: Bool

    static let window = 50_000
    static let ends: Set<String> = ["crashed", "exited", "stopped", "cancelled", "killed", "abandoned", "quarantined"]

    static func build(of run: RunID, in store: any OperatorStore) async throws -> Timeline {
        let summary = try await store.run(run)
        let events = try await store.lastEvents(of: run, count: window, agent: nil)
        let now = Date()
        let to = summary.status.hasEnded ? (summary.endedAt ?? events.last?.time ?? now) : now
        var lanes: [String: Lane] = [:]
        var order: [String] = []
        var gaps: [Gap] = []
        var lastTime: Date?
        var lostAt: Date?
        func closeAll(at time: Date) {
            for name in order {
                if let open = lanes[name]!.spans.indices.last, lanes[name]!.spans[open].to == nil {
                    lanes[name]!.spans[open].to = time
                    lanes[name]!.spans[open].ended = "lost"
                }
            }
        }
        for event in events where event.event != "checkpointed" && event.event != "log" {
            // The run's own facts: its process was lost at its last heartbeat; another resumed it.
            if event.event == "process-lost" {
                closeAll(at: event.time)
                lostAt = event.time
                continue
            }
            if event.event == "resumed" {
                closeAll(at: lastTime ?? event.time)
                if let from = lostAt ?? lastTime, from < event.time { gaps.append(Gap(from: from, to: event.time)) }
                lostAt = nil
                lastTime = event.time
                continue
            }
            if lanes[event.agent] == nil {
                lanes[event.agent] = Lane(agent: event.agent, spans: [], marks: [])
                order.append(event.agent)
            }
            switch event.event {
            case "started":
                if let open = lanes[event.agent]!.spans.indices.last, lanes[event.agent]!.spans[open].to == nil {
                    // A start with the previous incarnation still open: its process died.
                    let died = lastTime ?? event.time
                    lanes[event.agent]!.spans[open].to = died
                    lanes[event.agent]!.spans[open].ended = "lost"
                    if died < event.time, gaps.last.map({ $0.to < died }) ?? true { gaps.append(Gap(from: died, to: event.time)) }
                }
                lanes[event.agent]!.spans.append(Span(incarnation: event.incarnation, from: event.time))
            case let name where ends.contains(name):
                if let open = lanes[event.agent]!.spans.indices.last, lanes[event.agent]!.spans[open].to == nil {
                    lanes[event.agent]!.spans[open].to = event.time
                    lanes[event.agent]!.spans[open].ended = name
                    lanes[event.agent]!.spans[open].detail = event.detail.isEmpty ? nil : event.detail
                } else {
                    lanes[event.agent]!.marks.append(Mark(time: event.time, event: name, detail: event.detail))
                }
            default:
                lanes[event.agent]!.marks.append(Mark(time: event.time, event: event.event, detail: event.detail))
            }
            lastTime = event.time
        }
        // Supervisors' own events (incarnation 0) carry no spans: keep agents first, in order of appearance.
        let from = events.first?.time ?? summary.createdAt
        // Sixty intervals over the run, or over its last ten minutes.
        let start = max(from, to.addingTimeInterval(-600))
        let bucket = max(1, to.timeIntervalSince(start) / 60)
        var restarts = [Int](repeating: 0, count: 60)
        var crashes = [Int](repeating: 0, count: 60)
        for event in events where event.time >= start {
            let index = min(59, Int(event.time.timeIntervalSince(start) / bucket))
            if event.event == "restarting" { restarts[index] += 1 }
            if event.event == "crashed" { crashes[index] += 1 }
        }
        return Timeline(
            run: run, from: min(from, summary.createdAt), to: to, lanes: order.map { lanes[$0]! }, gaps: gaps,
            series: Series(bucketSeconds: bucket, restarts: restarts, crashes: crashes),
            truncated: events.count == window
        )
    }
}
