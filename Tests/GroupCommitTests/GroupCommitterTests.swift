import Synchronization
import Testing
import VaultTestSupport

@testable import GroupCommit

/// A flush scripted by the test: it records each batch, waits at the
/// gate of its call (the test opens it), and fails a batch holding a negative item.
final class ScriptedFlush: Sendable {
    struct Failure: Error, Equatable {}

    struct Call: Equatable {
        var items: [Int]
    }

    private let calls = Mutex<[Call]>([])
    /// Gate `i` holds flush call `i`; calls past the end pass at once.
    let gates: [Gate]

    init(gated: Int) {
        gates = (0..<gated).map { _ in Gate() }
    }

    var recorded: [Call] { calls.withLock { $0 } }

    func flush(_ items: [Int]) async throws -> [String] {
        let index = calls.withLock { calls in
            calls.append(Call(items: items))
            return calls.count - 1
        }
        if index < gates.count { await gates[index].wait() }
        if items.contains(where: { $0 < 0 }) { throw Failure() }
        return items.map { "outcome \($0)" }
    }
}

/// A committer over `script` whose queue the test can wait for.
struct Harness {
    let committer: GroupCommitter<Int, String>
    let script: ScriptedFlush
    private let queueLengths: AsyncStream<Int>

    init(gated: Int, maximumItemsPerCommit: Int = 20_000) {
        let script = ScriptedFlush(gated: gated)
        let (queueLengths, queued) = AsyncStream.makeStream(of: Int.self)
        self.script = script
        self.queueLengths = queueLengths
        committer = GroupCommitter(
            maximumItemsPerCommit: maximumItemsPerCommit, didQueue: { queued.yield($0) },
            flush: { try await script.flush($0) })
    }

    /// Suspends until `count` submissions are queued behind the running commit.
    func waitForQueue(_ count: Int) async {
        for await length in queueLengths where length >= count { return }
    }

    /// Submits `items` from a task of its own (`name` says which in the test).
    func submit(_ items: [Int], as name: String) -> Task<[String], any Error> {
        Task { [committer] in try await committer.submit(items) }
    }
}

func outcomes(_ items: [Int]) -> [String] { items.map { "outcome \($0)" } }

@Suite("GroupCommitter", .timeLimit(.minutes(1)))
struct GroupCommitterTests {
    @Test("concurrent submitters each get their own outcomes, in their order")
    func concurrentSubmittersGetTheirOwnOutcomes() async throws {
        let harness = Harness(gated: 0)
        let submissions = (0..<64).map { index in (0..<(index % 5 + 1)).map { index * 10 + $0 } }
        try await withThrowingTaskGroup(of: ([Int], [String]).self) { group in
            for items in submissions {
                group.addTask { (items, try await harness.committer.submit(items)) }
            }
            for try await (items, result) in group {
                #expect(result == outcomes(items))
            }
        }
        // Every item was committed exactly once.
        let committed = harness.script.recorded.flatMap(\.items)
        #expect(committed.sorted() == submissions.flatMap { $0 }.sorted())
        #expect(try await harness.committer.submit([]) == [])
    }

    @Test("submissions that queue behind a running commit share the next one, in arrival order")
    func queuedSubmissionsShareOneCommit() async throws {
        let harness = Harness(gated: 1)
        let first = harness.submit([1], as: "first")
        try await harness.script.gates[0].waitForArrivals(1)
        let queued = [harness.submit([2, 3], as: "second")]
        await harness.waitForQueue(1)
        let later = [harness.submit([4], as: "third"), harness.submit([5, 6], as: "fourth")]
        await harness.waitForQueue(3)

        harness.script.gates[0].open()
        #expect(try await first.value == outcomes([1]))
        #expect(try await queued[0].value == outcomes([2, 3]))
        let results = Set([try await later[0].value, try await later[1].value])
        #expect(results == [outcomes([4]), outcomes([5, 6])])

        let calls = harness.script.recorded
        try #require(calls.count == 2)
        #expect(calls[0] == ScriptedFlush.Call(items: [1]))
        // One commit took everything queued, the first queued submitter's items first.
        #expect(Set(calls[1].items) == [2, 3, 4, 5, 6])
        #expect(calls[1].items.prefix(2) == [2, 3])
    }

    @Test("a throwing flush fails its own batch only, and later submissions still commit")
    func throwingFlushFailsItsBatchOnly() async throws {
        let harness = Harness(gated: 2)
        let first = harness.submit([1], as: "first")
        try await harness.script.gates[0].waitForArrivals(1)
        let poisoned = harness.submit([-1], as: "poisoned")
        await harness.waitForQueue(1)
        let sharing = harness.submit([2], as: "sharing")
        await harness.waitForQueue(2)

        harness.script.gates[0].open()
        #expect(try await first.value == outcomes([1]))
        // The failing batch is running; a submission queues behind it.
        try await harness.script.gates[1].waitForArrivals(1)
        let after = harness.submit([3], as: "after")
        await harness.waitForQueue(1)
        harness.script.gates[1].open()

        await #expect(throws: ScriptedFlush.Failure.self) { try await poisoned.value }
        await #expect(throws: ScriptedFlush.Failure.self) { try await sharing.value }
        #expect(try await after.value == outcomes([3]))
        #expect(try await harness.committer.submit([4]) == outcomes([4]))
        #expect(harness.script.recorded.map(\.items) == [[1], [-1, 2], [3], [4]])
    }

    @Test("maximumItemsPerCommit splits what is queued into several commits, in order")
    func maximumItemsPerCommitSplitsBatches() async throws {
        let harness = Harness(gated: 1, maximumItemsPerCommit: 3)
        let first = harness.submit([0], as: "a")
        try await harness.script.gates[0].waitForArrivals(1)
        var queued = [(items: [Int], task: Task<[String], any Error>)]()
        for (index, items) in [[1, 2], [3], [4, 5], [6], [7, 8, 9, 10], [11]].enumerated() {
            queued.append((items, harness.submit(items, as: "queued \(index)")))
            await harness.waitForQueue(index + 1)
        }

        harness.script.gates[0].open()
        #expect(try await first.value == outcomes([0]))
        for (items, task) in queued {
            #expect(try await task.value == outcomes(items))
        }
        // A batch's first submission always goes in, even past the bound; the rest wait their turn.
        #expect(
            harness.script.recorded.map(\.items) == [[0], [1, 2, 3], [4, 5, 6], [7, 8, 9, 10], [11]])
    }

    @Test("cancelled submitters still get their outcomes, and their commits complete")
    func cancellationDoesNotCutCommitsShort() async throws {
        let harness = Harness(gated: 2)
        let first = harness.submit([1], as: "first")
        try await harness.script.gates[0].waitForArrivals(1)
        let leaderToBe = harness.submit([2], as: "second")
        await harness.waitForQueue(1)
        let follower = harness.submit([3], as: "third")
        await harness.waitForQueue(2)
        // Cancelled while queued: its items still go in the next commit.
        leaderToBe.cancel()
        harness.script.gates[0].open()
        #expect(try await first.value == outcomes([1]))
        try await harness.script.gates[1].waitForArrivals(1)
        harness.script.gates[1].open()
        #expect(try await leaderToBe.value == outcomes([2]))
        #expect(try await follower.value == outcomes([3]))
        #expect(harness.script.recorded.map(\.items) == [[1], [2, 3]])
    }
}
