import Foundation
import HTTPTypes
import InMemoryLogging
import Logging
import NIOCore
import Testing
import TokenVault
import VaultTestSupport

/// No PAN reaches a log entry or a response, whatever the client sends and wherever it puts it.
@Suite("No PAN in logs or responses")
struct LeakTests {
    /// Collects every reply of a run and every PAN-like string sent in it.
    final class Recorder: @unchecked Sendable {
        // @unchecked: used from one test task only.
        let server: TestServer
        var pans = Set<String>()
        var replies = [(request: String, reply: Reply)]()

        init(server: TestServer) {
            self.server = server
        }

        func record(_ request: String, _ reply: Reply) {
            replies.append((request, reply))
        }

        func tokenize(
            _ card: TestCard, format: String? = nil, dedupe: Bool? = nil, auth: Auth = .standard
        )
            async throws
        {
            record("tokenize", try await server.tokenize(card, format: format, dedupe: dedupe, auth: auth))
        }

        func send(
            _ method: HTTPRequest.Method, _ uri: String, auth: Auth = .standard, body: String? = nil
        )
            async throws
        {
            let reply = try await server.send(method, uri, auth: auth, body: body.map { ByteBuffer(string: $0) })
            record("\(method) \(uri.prefix(12))", reply)
        }

        /// The digits of a PAN sent (the scanner also finds them split by spaces or dashes).
        func sent(_ pan: String) {
            pans.insert(pan.filter(\.isWholeNumber))
        }
    }

    @Test("Many requests, good and bad, with PANs in bodies, paths, queries and headers", arguments: Transport.allCases)
    func noPANAnywhere(transport: Transport) async throws {
        try await withServer(transport: transport) { server in
            var generator = SeededGenerator()
            let seed = generator.seed
            let recorder = Recorder(server: server)
            let (_, readOnlySecret) = try await server.key(scopes: [.tokensRead], name: "read-only")
            let expired = Months.previous
            var batch = [Any]()

            for index in 0..<40 {
                let card = PANGenerator.card(withCVV: true, using: &generator)
                let broken = PANGenerator.breakingLuhn(card.pan)
                let spaced = stride(from: 0, to: card.pan.count, by: 4).map { offset -> String in
                    let start = card.pan.index(card.pan.startIndex, offsetBy: offset)
                    let end = card.pan.index(start, offsetBy: 4, limitedBy: card.pan.endIndex) ?? card.pan.endIndex
                    return String(card.pan[start..<end])
                }.joined(separator: index.isMultiple(of: 2) ? " " : "-")
                for pan in [card.pan, broken, spaced] { recorder.sent(pan) }

                // Accepted: opaque and numeric, deduplicated or not, formatted or not.
                try await recorder.tokenize(
                    card, format: index.isMultiple(of: 2) ? "numeric" : "opaque", dedupe: index % 3 == 0)
                try await recorder.tokenize(TestCard(pan: spaced, cvv: card.cvv, brand: card.brand), dedupe: true)
                // Refused card data.
                try await recorder.tokenize(TestCard(pan: broken, cvv: card.cvv, brand: card.brand))
                try await recorder.tokenize(card.with(cvv: card.cvv! + "7"))
                try await recorder.tokenize(card.with(cvv: String(card.cvv!.dropLast())))
                try await recorder.tokenize(
                    TestCard(pan: card.pan, expMonth: expired.month, expYear: expired.year, brand: card.brand))
                try await recorder.tokenize(TestCard(pan: card.pan, expMonth: 13, cvv: card.cvv, brand: card.brand))
                try await recorder.tokenize(TestCard(pan: card.pan + "0000", brand: card.brand))
                try await recorder.tokenize(TestCard(pan: card.pan + "x", brand: card.brand))
                try await recorder.tokenize(card, format: "pan")
                // Wrong JSON types and broken JSON around a PAN.
                try await recorder.send(
                    .post, "/v1/tokens", body: #"{"pan": \#(card.pan), "exp_month": 12, "exp_year": 2031}"#)
                try await recorder.send(
                    .post, "/v1/tokens", body: #"{"pan": "\#(card.pan)", "exp_month": "12", "exp_year": 2031}"#)
                try await recorder.send(.post, "/v1/tokens", body: #"{"pan": "\#(card.pan)", "cvv": "\#(card.cvv!)""#)
                try await recorder.send(.post, "/v1/tokens", body: #"{"pan": "\#(card.pan)"}"#)
                try await recorder.send(.post, "/v1/tokens", body: #"{"\#(card.pan)": 1}"#)
                try await recorder.send(.post, "/v1/tokens/batch", body: #"{"cards": "\#(card.pan)"}"#)
                // Without the right credential.
                try await recorder.tokenize(card, auth: .none)
                try await recorder.tokenize(card, auth: .bearer(readOnlySecret))
                try await recorder.send(.get, "/v1/tokens/\(unknownToken)", auth: .bearer(card.pan))
                try await recorder.send(.get, "/v1/tokens/\(unknownToken)", auth: .header(card.pan))
                // A PAN where a token belongs, in a query, in an unknown route.
                try await recorder.send(.get, "/v1/tokens/\(card.pan)")
                try await recorder.send(.delete, "/v1/tokens/\(card.pan)")
                try await recorder.send(.get, "/v1/tokens/\(spaced.replacingOccurrences(of: " ", with: "%20"))")
                try await recorder.send(.get, "/v1/tokens/\(card.pan)", auth: .none)
                try await recorder.send(.get, "/v1/tokens/\(unknownToken)?pan=\(card.pan)")
                try await recorder.send(.get, "/healthz?pan=\(card.pan)&cvv=\(card.cvv!)", auth: .none)
                try await recorder.send(.get, "/v1/cards/\(card.pan)")
                try await recorder.send(.post, "/v1/tokens/\(card.pan)", body: "{}")

                batch.append(card.json())
                batch.append(TestCard(pan: broken, brand: card.brand).json())
                batch.append(["pan": card.pan, "exp_month": 12] as [String: Any])
                batch.append(["pan": card.pan, "exp_month": "x", "exp_year": 2031] as [String: Any])
                batch.append(card.with(cvv: "1").json())
            }
            let batchReply = try await server.post("/v1/tokens/batch", json: ["cards": batch])
            #expect(batchReply.status == .ok, "\(batchReply)")
            recorder.record("batch", batchReply)

            // The requests reached the handlers (not a run of 404s) and were logged.
            let statuses = Set(recorder.replies.map(\.reply.status.code))
            #expect(statuses.isSuperset(of: [200, 201, 400, 401, 403, 404]), "\(statuses.sorted())")
            let entries = server.logs.entries
            let requestLines = entries.filter { $0.message.description == "request" }
            #expect(requestLines.count >= recorder.replies.count, "the error middleware logs every request")

            // Logs: every entry's message, metadata and error, scanned for the digits of every
            // PAN, bare or split by spaces or dashes.
            let rendered = entries.map(TestLog.rendered)
            let inLogs = PANScanner.leaked(recorder.pans, in: rendered.joined(separator: "\n"))
            let leakingEntries = rendered.filter { text in inLogs.contains { text.contains($0) } }
            #expect(inLogs.isEmpty, "seed \(seed): \(inLogs.count) PANs in the log, e.g. \(leakingEntries.prefix(3))")

            // Responses: body and headers.
            var inResponses = [String]()
            for (request, reply) in recorder.replies {
                let text = reply.text + "\n" + reply.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n")
                if !PANScanner.leaked(recorder.pans, in: text).isEmpty {
                    inResponses.append("\(request) -> \(reply.status.code) \(reply.errorCode ?? "")")
                }
            }
            #expect(inResponses.isEmpty, "seed \(seed): PANs in responses to \(inResponses.prefix(10))")
            #expect(recorder.pans.count >= 80)
        }
    }

    @Test("The scanner finds a PAN bare, spaced, dashed or inside other text, and nothing else")
    func scanner() {
        let pans: Set = ["4111111111111111", "378282246310005"]
        for text in [
            "4111111111111111", "pan=4111111111111111;", #"{"pan":"4111 1111 1111 1111"}"#, "x 4111-1111-1111-1111 y",
            "route=/v1/tokens/378282246310005", "00378282246310005999",
        ] {
            #expect(!PANScanner.leaked(pans, in: text).isEmpty, "\(text)")
        }
        for text in [
            "4111118235091112", "411111 1111", "4111111111111112", "4111  1111 1111 1111", "4111.1111.1111.1111",
        ] {
            #expect(PANScanner.leaked(pans, in: text).isEmpty, "\(text)")
        }
    }
}
