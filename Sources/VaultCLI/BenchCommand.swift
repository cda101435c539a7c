import ArgumentParser

/// `vault bench`: in-process benchmarks (see Scripts/bench for the HTTP ones).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure in-process tokenize and rewrap throughput beside the raw crypto limit.",
        discussion: "Build in release (Scripts/bench does) for meaningful figures.")

    func run() async throws {
        throw CleanExit.message("not yet")
    }
}
