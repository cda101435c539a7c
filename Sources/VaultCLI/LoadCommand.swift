import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// `vault load`: an open-loop load generator for a running service. Requests are sent on a fixed
/// schedule whatever the answers' pace, and each latency counts from the request's scheduled time:
/// a server that falls behind shows it in the percentiles instead of slowing the client down
/// (the coordinated omission a closed-loop tool such as wrk has). Scripts/bench uses it for the
/// network authorizations at a steady 2,000/s.
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load",
        abstract: "Send POST requests at a fixed rate to a running vault and print latency percentiles.",
        discussion: """
            Each line of --bodies is one JSON request body; they are sent in turn, and @SEQ@ in a body is \
            replaced by a number unique to the request (for Idempotency-Key-like fields such as \
            network_reference). Latencies count from when each request was due, so a server that falls \
            behind the rate shows it. Requests due in the first --warmup seconds are sent but not counted. \
            Exits 1 if any answer is not 2xx.
            """)

    @Option(help: "The URL to POST to.") var url: String
    @Option(name: .customLong("header"), help: "A request header, 'Name: value' (repeatable).")
    var headers: [String] = []
    @Option(help: "A file of JSON request bodies, one per line.") var bodies: String
    @Option(help: "Requests per second.") var rate: Double = 2000
    @Option(help: "Seconds to send for, warm-up included.") var duration: Double = 12
    @Option(help: "Seconds at the start whose requests are not counted.") var warmup: Double = 2
    @Option(help: "Most connections open at once.") var connections: Int = 64
    @Flag(help: "Print the result as JSON.") var json = false

    struct Summary: Encodable {
        var requests: Int
        var errors: Int
        /// The failed requests by HTTP status, or by the client's error when no answer came.
        var errorKinds: [String: Int]
        var targetRate: Double
        var achievedRate: Double
        var p50Ms: Double
        var p90Ms: Double
        var p99Ms: Double
        var maxMs: Double

        enum CodingKeys: String, CodingKey {
            case requests, errors
            case errorKinds = "error_kinds"
            case targetRate = "target_rate"
            case achievedRate = "achieved_rate"
            case p50Ms = "p50_ms"
            case p90Ms = "p90_ms"
            case p99Ms = "p99_ms"
            case maxMs = "max_ms"
        }
    }

    func validate() throws {
        guard rate > 0, rate <= 100_000 else { throw ValidationError("--rate must be above 0 and at most 100000") }
        guard duration > 0, warmup >= 0, warmup < duration else {
            throw ValidationError("--duration must be positive and longer than --warmup")
        }
        guard connections > 0 else { throw ValidationError("--connections must be positive") }
        for header in headers where !header.contains(":") {
            throw ValidationError("--header must be 'Name: value'")
        }
    }

    func run() async throws {
        try await CLI.run {
            let templates = try String(contentsOfFile: bodies, encoding: .utf8).split(separator: "\n").map(String.init)
            guard !templates.isEmpty else { throw ValidationError("--bodies holds no request body") }
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool = .init(
                idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
            configuration.redirectConfiguration = .disallow
            let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            let summary: Summary
            do {
                summary = try await send(templates, client: client)
                try await client.shutdown()
            } catch {
                try? await client.shutdown()
                throw error
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(summary), as: UTF8.self))
            } else {
                print(
                    String(
                        format: "%d requests at %.0f/s (target %.0f/s), %d errors; p50 %.3f ms, p90 %.3f ms, "
                            + "p99 %.3f ms, max %.3f ms",
                        summary.requests, summary.achievedRate, summary.targetRate, summary.errors, summary.p50Ms,
                        summary.p90Ms, summary.p99Ms, summary.maxMs))
            }
            if summary.errors > 0 { throw ExitCode(1) }
        }
    }

    private func send(_ templates: [String], client: HTTPClient) async throws -> Summary {
        var requestHeaders = HTTPHeaders([("Content-Type", "application/json")])
        for header in headers {
            let parts = header.split(separator: ":", maxSplits: 1)
            requestHeaders.add(
                name: String(parts[0]).trimmingCharacters(in: .whitespaces),
                value: String(parts[1]).trimmingCharacters(in: .whitespaces))
        }
        let total = Int(rate * duration)
        let counted = total - Int(rate * warmup)
        let run = UInt64(Date().timeIntervalSince1970 * 1000)
        let interval = Duration.seconds(1) / rate
        let clock = ContinuousClock()
        let start = clock.now + .milliseconds(100)
        let outcomes = Outcomes()
        let countedFrom = total - counted
        let fixedHeaders = requestHeaders
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<total {
                let due = start + interval * index
                if due > clock.now { try? await clock.sleep(until: due, tolerance: .microseconds(50)) }
                let body = templates[index % templates.count].replacingOccurrences(of: "@SEQ@", with: "\(run)-\(index)")
                group.addTask { [url] in
                    var request = HTTPClientRequest(url: url)
                    request.method = .POST
                    request.headers = fixedHeaders
                    request.body = .bytes(ByteBuffer(string: body))
                    var failure: String?
                    do {
                        let response = try await client.execute(request, timeout: .seconds(30))
                        _ = try await response.body.collect(upTo: 1 << 20)
                        if !(200..<300).contains(response.status.code) { failure = "\(response.status.code)" }
                    } catch {
                        failure = "\(type(of: error)): \(error)".prefix(80).description
                    }
                    let elapsed = clock.now - due
                    if let failure { outcomes.errorKinds.withLock { $0[failure, default: 0] += 1 } }
                    guard index >= countedFrom else { return }
                    let milliseconds =
                        Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
                    outcomes.latencies.withLock { $0.append(milliseconds) }
                }
            }
        }
        let elapsed = clock.now - (start + interval * countedFrom)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let sorted = outcomes.latencies.withLock { $0.sorted() }
        let errorKinds = outcomes.errorKinds.withLock { $0 }
        func percentile(_ fraction: Double) -> Double {
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * fraction))]
        }
        return Summary(
            requests: total, errors: errorKinds.values.reduce(0, +), errorKinds: errorKinds, targetRate: rate,
            achievedRate: Double(sorted.count) / seconds, p50Ms: percentile(0.5), p90Ms: percentile(0.9),
            p99Ms: percentile(0.99), maxMs: sorted.last ?? 0)
    }

    /// What the requests' tasks report.
    private final class Outcomes: Sendable {
        let latencies = Mutex<[Double]>([])
        let errorKinds = Mutex<[String: Int]>([:])
    }
}
