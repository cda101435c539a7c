import AcquirerSimulator
import Foundation
import Hummingbird
import InMemoryLogging
import Testing
import VaultCrypto
import VaultTestSupport

/// The simulator's rules and wire protocol, through its router (docs/CRYPTO.md, "Acquirer
/// authorization").
@Suite("Acquirer simulator")
struct AcquirerSimulatorTests {
    @Test func approvesWithASixDigitAuthCode() async throws {
        try await withSimulatorRouter { harness, client in
            let reply = try await client.post(
                "/v1/authorizations", try harness.body(.visa.with(cvv: "737"), amount: 2500, reference: "topup-1"))
            #expect(reply.status == .ok, "\(reply)")
            let json = reply.json
            #expect(json["reference"] as? String == "topup-1")
            #expect(json["status"] as? String == "approved")
            let code = try #require(json["auth_code"] as? String)
            #expect(code.count == 6 && code.allSatisfy(\.isASCII) && code.allSatisfy(\.isNumber))
            let acquirerReference = try #require(json["acquirer_reference"] as? String)
            #expect(acquirerReference.hasPrefix("acq_") && acquirerReference.count == 28)
            #expect(json["decline_code"] is NSNull, "decline_code is written out as null")
            #expect(json["cvv_present"] as? Bool == true)
            #expect(json["amount"] as? Int == 2500)
            #expect(json["currency"] as? String == "EUR")
        }
    }

    static let declineCases: [(TestCard, Int64, String)] = [
        (.declined, 1000, "do_not_honor"),
        (.insufficientFunds, 1000, "insufficient_funds"),
        (TestCard(pan: "4111111111111111", expMonth: 1, expYear: 2020), 1000, "expired_card"),
        (.visa, 1_000_001, "amount_limit_exceeded"),
        (TestCard.visa.with(cvv: "123"), 1000, "incorrect_cvv"),
        (TestCard.visa.with(cvv: "7373"), 1000, "incorrect_cvv"),
        (TestCard.amex.with(cvv: "737"), 1000, "incorrect_cvv"),
        (TestCard.mastercard.with(cvv: "000"), 1000, "incorrect_cvv"),
    ]

    @Test("each decline rule", arguments: declineCases)
    func declines(card: TestCard, amount: Int64, code: String) async throws {
        try await withSimulatorRouter { harness, client in
            let reply = try await client.post(
                "/v1/authorizations", try harness.body(card, amount: amount, reference: "ref-\(code)"))
            #expect(reply.status == .ok, "\(reply)")
            #expect(reply.json["status"] as? String == "declined")
            #expect(reply.json["decline_code"] as? String == code)
            #expect(reply.json["auth_code"] is NSNull)
        }
    }

    static let approveCases: [(TestCard, Int64)] = [
        (TestCard.visa.with(cvv: "737"), 1_000_000),
        (TestCard.amex.with(cvv: "7373"), 1),
        (.mastercard, 999),
        (.visa2, 1_000_000),
    ]

    @Test("approves the right CVV, no CVV, and an amount at the limit", arguments: approveCases)
    func approves(card: TestCard, amount: Int64) async throws {
        try await withSimulatorRouter { harness, client in
            let reply = try await client.post(
                "/v1/authorizations", try harness.body(card, amount: amount, reference: "ok"))
            #expect(reply.json["status"] as? String == "approved", "\(reply)")
            #expect(reply.json["cvv_present"] as? Bool == (card.cvv != nil))
        }
    }

    @Test func theAmountLimitIsConfigurable() async throws {
        try await withSimulatorRouter(configuration: .init(amountLimit: 500)) { harness, client in
            let over = try await client.post("/v1/authorizations", try harness.body(.visa, amount: 501, reference: "a"))
            #expect(over.json["decline_code"] as? String == "amount_limit_exceeded")
            let at = try await client.post("/v1/authorizations", try harness.body(.visa, amount: 500, reference: "b"))
            #expect(at.json["status"] as? String == "approved")
        }
    }

    @Test func aRepeatedReferenceGetsTheFirstAnswer() async throws {
        try await withSimulatorRouter { harness, client in
            let body = try harness.body(.visa.with(cvv: "737"), amount: 700, reference: "retry-me")
            let first = try await client.post("/v1/authorizations", body)
            // The retry comes without CVV (the vault deleted it on first use) and in another sealed box.
            let second = try await client.post(
                "/v1/authorizations", try harness.body(.visa, amount: 700, reference: "retry-me"))
            #expect(first.status == .ok && second.status == .ok)
            #expect(first.text == second.text, "the stored answer, byte for byte")
            let fetched = try await client.get("/v1/authorizations/retry-me")
            #expect(fetched.text == first.text)
            #expect(try await harness.simulator.records().count == 1)
        }
    }

    @Test func aReferenceReusedWithAnotherAmountOrCurrencyIsAConflict() async throws {
        try await withSimulatorRouter { harness, client in
            _ = try await client.post("/v1/authorizations", try harness.body(.visa, amount: 700, reference: "once"))
            let amount = try await client.post(
                "/v1/authorizations", try harness.body(.visa, amount: 701, reference: "once"))
            #expect(amount.status == .conflict)
            #expect(amount.errorCode == "reference_reused")
            let currency = try await client.post(
                "/v1/authorizations", try harness.body(.visa, amount: 700, currency: "USD", reference: "once"))
            #expect(currency.status == .conflict)
            #expect(try await harness.simulator.records().map(\.amount) == [700])
        }
    }

    @Test func theUnavailableAmountAnswers503AndRecordsNothing() async throws {
        try await withSimulatorRouter { harness, client in
            let reply = try await client.post(
                "/v1/authorizations",
                try harness.body(.visa, amount: AcquirerConfiguration.unavailableAmount, reference: "r"))
            #expect(reply.status == .serviceUnavailable)
            #expect(reply.errorCode == "acquirer_unavailable")
            #expect(try await harness.simulator.records().isEmpty)
            #expect(try await client.get("/v1/authorizations/r").status == .notFound)
        }
    }

    @Test func theSlowAmountAnswersAfterTheDelay() async throws {
        try await withSimulatorRouter(configuration: .init(slowDelay: .milliseconds(200))) { harness, client in
            let started = ContinuousClock.now
            let reply = try await client.post(
                "/v1/authorizations", try harness.body(.visa, amount: AcquirerConfiguration.slowAmount, reference: "s"))
            #expect(ContinuousClock.now - started >= .milliseconds(200))
            #expect(reply.json["status"] as? String == "approved")
            #expect(try await harness.simulator.records().count == 1)
        }
    }

    @Test func malformedRequestsAre400WithoutEcho() async throws {
        try await withSimulatorRouter { harness, client in
            let card = try harness.seal(.visa)
            let cases: [(String, String)] = [
                ("not json", "invalid_json"),
                (#"{"reference":"r","amount":1,"currency":"EUR"}"#, "invalid_json"),
                (#"{"reference":"","amount":1,"currency":"EUR","card":"\#(card)"}"#, "invalid_reference"),
                (#"{"reference":"r","amount":0,"currency":"EUR","card":"\#(card)"}"#, "invalid_amount"),
                (#"{"reference":"r","amount":-5,"currency":"EUR","card":"\#(card)"}"#, "invalid_amount"),
                (#"{"reference":"r","amount":1,"currency":"eur","card":"\#(card)"}"#, "invalid_currency"),
                (#"{"reference":"r","amount":1,"currency":"EUR","card":"%%%"}"#, "invalid_card_block"),
                (#"{"reference":"r","amount":1,"currency":"EUR","card":"AAAA"}"#, "invalid_card_block"),
                // A PAN in clear instead of a sealed box is not a card block (and is not echoed).
                (#"{"reference":"r","amount":1,"currency":"EUR","card":"4111111111111111"}"#, "invalid_card_block"),
            ]
            for (body, code) in cases {
                let reply = try await client.post("/v1/authorizations", body)
                #expect(reply.status == .badRequest, "\(code): \(reply)")
                #expect(reply.errorCode == code, "\(reply)")
                #expect(!reply.text.contains("4111111111111111"))
            }
            #expect(try await harness.simulator.records().isEmpty)
        }
    }

    @Test func aCardBlockSealedToAnotherKeyIsRefused() async throws {
        try await withSimulatorRouter { _, client in
            try await withSimulator { other in
                let body = try other.body(.visa, reference: "wrong-key")
                let reply = try await client.post("/v1/authorizations", body)
                #expect(reply.status == .badRequest)
                #expect(reply.errorCode == "invalid_card_block")
            }
        }
    }

    @Test(
        "malformed card blocks are 400 invalid_card",
        arguments: [
            #"{"pan":"4111111111111112","exp_month":12,"exp_year":2031}"#,  // fails Luhn
            #"{"pan":"41111111111","exp_month":12,"exp_year":2031}"#,  // too short
            #"{"pan":"4111111111111111","exp_month":13,"exp_year":2031}"#,
            #"{"pan":"4111111111111111","exp_year":2031}"#,
            #"{"pan":"4111111111111111","exp_month":12,"exp_year":2031,"cvv":"12"}"#,
            #"{"pan":"4111111111111111","exp_month":12,"exp_year":2031,"cvv":"12a"}"#,
            #"{"pan":"4111111111111111","pan":"4242424242424242","exp_month":12,"exp_year":2031}"#,
            #"{"pan":"4111\u0031111111111111","exp_month":12,"exp_year":2031}"#,
            #"{"pan":4111111111111111,"exp_month":12,"exp_year":2031}"#,
            #"{"pan":"4111111111111111","exp_month":12,"exp_year":2031} x"#,
            #"["4111111111111111"]"#,
            "",
        ])
    func invalidCards(json: String) async throws {
        try await withSimulatorRouter { harness, client in
            let body = #"{"reference":"r","amount":1,"currency":"EUR","card":"\#(try harness.seal(json: json))"}"#
            let reply = try await client.post("/v1/authorizations", body)
            #expect(reply.status == .badRequest, "\(reply)")
            #expect(reply.errorCode == "invalid_card")
            #expect(!reply.text.contains("4111"))
        }
    }

    @Test func aCardBlockMayCarryNullCVVAndUnknownFields() async throws {
        try await withSimulatorRouter { harness, client in
            let json =
                #" { "cvv" : null, "exp_year":2031 ,"note":"x","flag":true,"n":1, "exp_month":1,"pan":"4242424242424242"} "#
            let body = #"{"reference":"r","amount":1,"currency":"EUR","card":"\#(try harness.seal(json: json))"}"#
            let reply = try await client.post("/v1/authorizations", body)
            #expect(reply.json["status"] as? String == "approved", "\(reply)")
            #expect(reply.json["cvv_present"] as? Bool == false)
        }
    }

    @Test func lookupsAndHealth() async throws {
        try await withSimulatorRouter { harness, client in
            #expect(try await client.get("/healthz").status == .ok)
            let missing = try await client.get("/v1/authorizations/nothing-here")
            #expect(missing.status == .notFound)
            #expect(missing.errorCode == "not_found")
            _ = try await client.post("/v1/authorizations", try harness.body(.declined, reference: "case:7/a b"))
            let found = try await client.get("/v1/authorizations/case:7%2Fa%20b")
            #expect(found.json["decline_code"] as? String == "do_not_honor", "\(found)")
        }
    }

    @Test func recordsHoldBINAndLastFourButNoPANOrCVV() async throws {
        try await withSimulatorRouter { harness, client in
            for (index, card) in TestCard.all.enumerated() {
                let cvv = card.pan.count == 15 ? "7373" : "737"
                _ = try await client.post(
                    "/v1/authorizations", try harness.body(card.with(cvv: cvv), reference: "scan-\(index)"))
            }
            let records = try await harness.simulator.records()
            #expect(records.count == TestCard.all.count)
            for (record, card) in zip(records, TestCard.all) {
                #expect(record.bin == String(card.pan.prefix(6)))
                #expect(record.last4 == String(card.pan.suffix(4)))
                #expect(record.cvvPresent)
            }
            for file in ["acquirer.db", "acquirer.db-wal"] {
                #expect(try Bytes.mode(of: harness.directory + "/" + file) == 0o600, "\(file) is owner-only")
            }
            let files = Array(try Bytes.files(in: harness.directory, prefix: "acquirer.db").values.joined())
            #expect(files.count > 0)
            for card in TestCard.all {
                // The PAN, and the hidden digits joined to either end (BIN and last four alone
                // are stored; for 5555555555554444 the hidden digits joined to the last four
                // read like BIN then last four, so that form is left out).
                var forms = [card.pan, String(card.pan.dropLast(4))]
                if card.pan.dropFirst(6) != card.pan.prefix(6) + card.pan.suffix(4) {
                    forms.append(String(card.pan.dropFirst(6)))
                }
                for form in forms {
                    let found = Bytes.contains(files, form)
                    #expect(!found, "PAN digits in acquirer.db (\(card.testDescription))")
                }
            }
            let logs = harness.logs.entries.map(TestLog.rendered).joined(separator: "\n")
            for card in TestCard.all {
                #expect(!logs.contains(card.pan))
            }
        }
    }

    @Test func recordsSurviveARestart() async throws {
        try await withTemporaryDirectory("acquirer-tests") { root in
            let logger = TestLog.quiet()
            let first = try AcquirerSimulator.open(stateDirectory: root, logger: logger)
            let sealed = try Array(TestCard.visa.blockJSON.utf8).withUnsafeBytes {
                try SealedBox.seal($0, to: first.keyPair.publicKey)
            }
            let answer = try await first.authorize(
                AuthorizationSubmission(reference: "durable", amount: 10, currency: "EUR", sealedCard: sealed))
            let second = try AcquirerSimulator.open(stateDirectory: root, logger: logger)
            #expect(second.keyPair.publicKey == first.keyPair.publicKey)
            #expect(try await second.authorization(reference: "durable") == answer)
        }
    }
}
