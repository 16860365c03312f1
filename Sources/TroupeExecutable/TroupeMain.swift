import ArgumentParser
import TroupeCLI

/// The `troupe` executable: the operator CLI with the gallery's blueprints (`agents/`) and the `demo` verb.
@main
enum TroupeMain {
    static func main() async {
        await TroupeCommand.main(blueprints: Gallery.entries, services: [Gallery.http], verbs: [DemoCommand.self])
    }
}
