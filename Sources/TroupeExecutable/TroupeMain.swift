import ArgumentParser
import TroupeCLI
import TroupeConsole
import TroupeOTel
import TroupePostgres

/// The `troupe` executable: the operator CLI with the gallery's blueprints (`agents/`), the `demo` verb, and the
/// PostgreSQL store for `--database postgres://…`.
@main
enum TroupeMain {
    static func main() async {
        for scheme in ["postgres", "postgresql"] {
            TroupeCommand.register(scheme: scheme) { location in
                try await PostgresStore(
                    url: location.text,
                    configuration: .init(retention: location.retention, readOnly: location.readOnly)
                )
            }
        }
        OpenTelemetryExport.install()
        await TroupeCommand.main(blueprints: Gallery.entries, services: [Gallery.http], verbs: [DemoCommand.self, ServeCommand.self])
    }
}
