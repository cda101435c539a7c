import Foundation
import Testing
import VaultCLI
import VaultTestSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Finding 14: the long-running commands that hold keys or card data (`serve`, `acquirer-sim`)
/// disable core dumps and, on Linux, ptrace by the same user.
@Suite("Process hardening", .timeLimit(.minutes(10)))
struct ProcessHardeningTests {
    /// The soft and hard "Max core file size" of process `pid`, from `/proc/<pid>/limits`.
    static func coreLimits(of pid: Int32) throws -> (soft: String, hard: String) {
        let text = try String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Max core file size") }) else {
            throw TestFailure("no core limit in /proc/\(pid)/limits")
        }
        let fields = line.dropFirst("Max core file size".count).split(separator: " ")
        guard fields.count >= 2 else { throw TestFailure("cannot read: \(line)") }
        return (String(fields[0]), String(fields[1]))
    }

    // One test, in this order: the in-process part makes this process's hard limit 0, which its
    // later children inherit, so the servers are checked first (their limit must be their own doing).
    @Test("Finding 14: serve and acquirer-sim run with RLIMIT_CORE 0; ProcessHardening.apply() also clears dumpable")
    func finding14NoCoreDumps() async throws {
        #if os(Linux)
            let ours = try Self.coreLimits(of: getpid())
            try #require(ours.hard != "0", "this process's hard core limit is already 0: nothing to tell apart")
            try await withSandbox { sandbox in
                try await withServer(sandbox) { server, _ in
                    let limits = try Self.coreLimits(of: server.process.processIdentifier)
                    #expect(limits.soft == "0" && limits.hard == "0", "vault serve: \(limits)")
                }
                let acquirer = try await AcquirerProcess.start(sandbox)
                defer { acquirer.stop() }
                let limits = try Self.coreLimits(of: acquirer.process.processIdentifier)
                #expect(limits.soft == "0" && limits.hard == "0", "vault acquirer-sim: \(limits)")
            }
            #expect(ProcessHardening.isDumpable == true)
            try ProcessHardening.apply()
            let limit = ProcessHardening.coreLimit
            #expect(limit.soft == 0 && limit.hard == 0, "\(limit)")
            #expect(ProcessHardening.isDumpable == false)
        #endif
    }

    /// `vault acquirer-sim --max-connections 1000` under `ulimits`, failing right after the checks
    /// on a state folder it cannot create.
    static func acquirerSim(ulimits: String) async throws -> CommandResult {
        try await runProcess(
            "/bin/sh",
            [
                "-c", "\(ulimits) && exec \"$0\" acquirer-sim --state-dir /dev/null/none --max-connections 1000",
                try VaultBinary.require(),
            ],
            cwd: FileManager.default.temporaryDirectory.path)
    }

    @Test("Finding 18: the open-file limit is raised to fit the connection cap, with a warning where it cannot be")
    func fileDescriptorsForTheCap() async throws {
        let raised = try await Self.acquirerSim(ulimits: "ulimit -Sn 300")
        #expect(!raised.stderr.contains("--max-connections"), "\(raised)")
        #expect(raised.stderr.contains("cannot create the state folder"), "it got past the check: \(raised)")
        let capped = try await Self.acquirerSim(ulimits: "ulimit -n 300")
        #expect(capped.stderr.contains("--max-connections 1000 needs about 1064 open files"), "\(capped)")
        #expect(capped.stderr.contains("the limit is 300"), "\(capped)")
    }
}
