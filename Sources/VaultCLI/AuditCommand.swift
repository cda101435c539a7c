import ArgumentParser
import Audit
import Foundation
import TokenVault

/// `vault audit …`: check and read the audit log.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify and list the tamper-evident audit log.",
        discussion: """
            Every detokenize request (granted or refused), credential change and key action is recorded with its \
            actor, time, outcome, origin, tokens or object, purpose and reference — never a PAN, CVV or secret. \
            Records are chained with a keyed MAC; the head is sealed and kept in the database and in \
            <data-dir>/audit.head.
            """,
        subcommands: [Verify.self, List.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the whole chain; exit 1 and name the first bad record if anything was changed.",
            discussion: """
                Detects records edited, deleted, inserted or reordered, and a cut tail. Prints \
                {"ok": true, "records": N} or {"ok": false, "first_bad_record": N, "reason": "…"} with --json. \
                The verification itself is appended to the log.
                """)

        @OptionGroup var storage: StorageOptions
        @Flag(help: "Print the result as JSON.") var json = false

        struct Output: Encodable {
            var ok: Bool
            var records: Int64
            var firstBadRecord: Int64?
            var reason: String?
        }

        func run() async throws {
            var intact = true
            try await CLI.run {
                let vault = try await CLI.opened(storage, logger: CLI.logger())
                let result = try await vault.audit.verify()
                intact = result.ok
                do {
                    try await vault.audit.append(
                        AuditEvent(
                            actor: KeyManager.Actor.cli.name, type: "audit.verify",
                            outcome: result.ok ? .success : .failure,
                            origin: KeyManager.Actor.cli.origin,
                            detail: result.ok
                                ? "records=\(result.records)" : "first_bad_record=\(result.firstBadRecord ?? 0)"))
                } catch let error where !result.ok {
                    // A log damaged at its head (audit_head deleted or rewound) cannot take another
                    // record; the verdict must still be reported.
                    FileHandle.standardError.write(
                        Data(
                            "warning: this verification could not be recorded in the audit log: \(String(reflecting: error))\n"
                                .utf8))
                }
                let output = Output(
                    ok: result.ok, records: result.records, firstBadRecord: result.firstBadRecord, reason: result.reason
                )
                if json {
                    try CLI.printJSON(output)
                } else if result.ok {
                    print("The audit log is intact: \(result.records) record(s).")
                } else {
                    print(
                        "The audit log is NOT intact: first bad record \(result.firstBadRecord ?? 0): "
                            + (result.reason ?? "unknown"))
                }
            }
            if !intact { throw ExitCode(1) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List audit records, oldest first, with filters and pagination.")

        @OptionGroup var storage: StorageOptions
        @Option(help: "Only records at or after this RFC 3339 time (e.g. 2026-01-31T00:00:00Z).") var since: String?
        @Option(help: "Only records of this actor (a credential id, or admin:cli).") var actor: String?
        @Option(help: "Only records that name this token (or object, e.g. data_key:2).") var token: String?
        @Option(help: "Only records after this sequence number (the next page's cursor).") var after: Int64 = 0
        @Option(help: "At most this many records (1 to 10000).") var limit: Int = 100
        @Flag(help: "Print {\"records\": […], \"next_after\": N|null}.") var json = false

        struct Output: Encodable {
            struct Record: Encodable {
                var sequence: Int64
                var time: Date
                var actor: String
                var type: String
                var outcome: String
                var origin: String
                var objects: [String]
                var purpose: String?
                var reference: String?
                var detail: String?
            }
            var records: [Record]
            var nextAfter: Int64?

            enum CodingKeys: String, CodingKey { case records, nextAfter }

            /// `next_after` is `null` on the last page, not left out: scripts page until it is null.
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(records, forKey: .records)
                try container.encode(nextAfter, forKey: .nextAfter)
            }
        }

        func validate() throws {
            guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be 1 to 10000") }
            guard after >= 0 else { throw ValidationError("--after must be 0 or more") }
            if let since, (try? Date(since, strategy: .iso8601)) == nil {
                throw ValidationError("--since must be an RFC 3339 time such as 2026-01-31T00:00:00Z")
            }
        }

        func run() async throws {
            try await CLI.run {
                let vault = try await CLI.opened(storage, logger: CLI.logger())
                let records = try await vault.audit.records(
                    since: try since.map { try Date($0, strategy: .iso8601) }, actor: actor, token: token, after: after,
                    limit: limit)
                let output = Output(
                    records: records.map {
                        .init(
                            sequence: $0.sequence, time: $0.event.time, actor: $0.event.actor, type: $0.event.type,
                            outcome: $0.event.outcome.rawValue, origin: $0.event.origin, objects: $0.event.objects,
                            purpose: $0.event.purpose, reference: $0.event.reference, detail: $0.event.detail)
                    },
                    nextAfter: records.count == limit ? records.last?.sequence : nil)
                guard !json else { return try CLI.printJSON(output) }
                let formatter = ISO8601DateFormatter()
                for record in output.records {
                    var line = "\(record.sequence)  \(formatter.string(from: record.time))  \(record.actor)  "
                    line += "\(record.type)  \(record.outcome)  \(record.origin)"
                    if !record.objects.isEmpty { line += "  [\(record.objects.joined(separator: " "))]" }
                    if let purpose = record.purpose { line += "  purpose=\(purpose)" }
                    if let reference = record.reference { line += "  reference=\(reference)" }
                    if let detail = record.detail { line += "  \(detail)" }
                    print(line)
                }
                if let next = output.nextAfter { print("(more: --after \(next))") }
            }
        }
    }
}
