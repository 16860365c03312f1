import Logging

/// The handler behind ``AgentContext/logger``: lines go to the run's own logger at its level, as before, and lines
/// at ``Run/Configuration/storedLogLevel`` or above also go to the run's event log as `log` events, so that
/// `troupe logs` shows them whatever `--log-level` the run was started with. Stores keep the newest lines of each
/// run (see the store's documentation for how many) and delete them with the run.
struct RunLogHandler: LogHandler {
    var base: any LogHandler
    let stored: Logger.Level
    let events: EventBus
    let agent: String
    let incarnation: UInt64

    var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    /// The lower of the two levels, so that a line either destination wants reaches ``log(event:)``.
    var logLevel: Logger.Level {
        get { min(base.logLevel, stored) }
        set { base.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { base.metadataProvider }
        set { base.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        if event.level >= base.logLevel { base.log(event: event) }
        guard event.level >= stored else { return }
        // The line's own metadata (not the run's and agent's, which the event's columns already hold).
        let extra = (event.metadata ?? [:]).filter { !$0.key.hasPrefix("troupe.") }.sorted { $0.key < $1.key }
        let text = extra.isEmpty ? "\(event.message)" : "\(event.message) " + extra.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        events.emit(agent, incarnation: incarnation, .logged(level: event.level, message: text))
    }
}
