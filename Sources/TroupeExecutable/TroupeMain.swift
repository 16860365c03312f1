import ArgumentParser
import TroupeCLI

/// The `troupe` executable: the operator CLI with the blueprints of `agents/`.
@main
enum TroupeMain {
    static func main() async {
        await TroupeCommand.main()
    }
}
