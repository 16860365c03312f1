import HelloAgentsAgents
import TroupeCLI

/// What `run hello` starts, with its parameters (`run hello --param count=20`).
let hello = BlueprintEntry(
    "hello",
    summary: "A durable greeter and its tally: kill them, resume them, and no greeting is lost or counted twice.",
    parameters: [
        .init("count", default: "10", help: "How many greetings.", kind: .integer(1...1_000_000)),
        .init("interval", default: "1s", help: "Time between greetings.", kind: .duration(.milliseconds(1)...(.seconds(3600)))),
    ],
    result: "tally"
) { parameters in
    Greeter.blueprint(count: try parameters.int("count"), interval: try parameters.duration("interval"))
}

await TroupeCommand.main(blueprints: [hello])
