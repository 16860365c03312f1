import ArgumentParser

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version",
        abstract: "Print the version of troupe."
    )

    func run() {
        say("troupe \(TroupeRelease.version)")
    }
}
