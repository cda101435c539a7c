/// Finds text that looks like a card number, so free-text fields (a wallet's `owner_ref`, an
/// `Idempotency-Key`) can refuse it instead of storing a PAN outside the vault.
///
/// A card number here is 13 to 19 ASCII digits that pass the Luhn check and start with a known
/// network's IIN, written either as one run of digits anywhere in the text (`ref4111111111111111`)
/// or as a whole word printed in the groups cards use, separated by single spaces, dashes, dots,
/// slashes or underscores (one kind per number): fours with a shorter last group
/// (`4111 1111 1111 1111`, `4111.1111.1111.1111`) or 4-6-5 / 4-6-4 (American Express, Diners
/// Club). Runs of more than 19 digits are ids, not card numbers, and grouped
/// digits inside a longer word, such as the middle of a UUID, are not either: a UUID is never
/// refused. A random 16-digit id that starts with a network's digit still is, one time in ten
/// (its last digit passes the Luhn check by chance).
public enum CardNumberDetector {
    /// `true` when `text` contains something that looks like a card number.
    public static func containsCardNumber(_ text: some StringProtocol) -> Bool {
        // A chain: groups of digits joined by single separators, ended by any other character.
        var chain = Chain()
        var current = [UInt8]()
        var pendingSeparator: UInt8?
        var previous: UInt8 = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if let separator = pendingSeparator {
                    chain.append(current, joinedBy: separator)
                    current.removeAll(keepingCapacity: true)
                    pendingSeparator = nil
                } else if current.isEmpty {
                    chain.startsInsideWord = isAlphanumeric(previous)
                }
                current.append(byte)
            case UInt8(ascii: " ") where !current.isEmpty && pendingSeparator == nil,
                UInt8(ascii: "-") where !current.isEmpty && pendingSeparator == nil,
                UInt8(ascii: ".") where !current.isEmpty && pendingSeparator == nil,
                UInt8(ascii: "/") where !current.isEmpty && pendingSeparator == nil,
                UInt8(ascii: "_") where !current.isEmpty && pendingSeparator == nil:
                pendingSeparator = byte
            default:
                if !current.isEmpty {
                    chain.append(current, joinedBy: nil)
                    chain.endsInsideWord = pendingSeparator == nil && isAlphanumeric(byte)
                    if chain.holdsCardNumber { return true }
                }
                chain = Chain()
                current.removeAll(keepingCapacity: true)
                pendingSeparator = nil
            }
            previous = byte
        }
        if !current.isEmpty { chain.append(current, joinedBy: nil) }
        return chain.holdsCardNumber
    }

    private struct Chain {
        var digits: [UInt8] = []
        var groupLengths: [Int] = []
        var separator: UInt8?
        var mixesSeparators = false
        var startsInsideWord = false
        var endsInsideWord = false
        var loneGroupIsCardNumber = false

        mutating func append(_ group: [UInt8], joinedBy joint: UInt8?) {
            if CardNumberDetector.isCardNumber(group) { loneGroupIsCardNumber = true }
            digits += group
            groupLengths.append(group.count)
            if let joint {
                if let separator, separator != joint { mixesSeparators = true }
                separator = joint
            }
        }

        var holdsCardNumber: Bool {
            if loneGroupIsCardNumber { return true }
            guard groupLengths.count > 1, !startsInsideWord, !endsInsideWord, !mixesSeparators,
                isPrinted(groupLengths)
            else { return false }
            return CardNumberDetector.isCardNumber(digits)
        }

        /// Fours with a last group of 1 to 4, or 4-6-5 / 4-6-4.
        private func isPrinted(_ lengths: [Int]) -> Bool {
            if lengths == [4, 6, 5] || lengths == [4, 6, 4] { return true }
            return lengths.dropLast().allSatisfy { $0 == 4 } && (1...4).contains(lengths.last!)
        }
    }

    /// The stricter rule for text that goes into the audit log: any window of 12 to 19 digits (as
    /// many as a PAN the vault accepts, ``CardInput/panLengths``) that passes the Luhn check,
    /// whatever its prefix, inside a chain of digit groups joined by single non-alphanumeric
    /// characters (`4111-1111-1111-1111`, `4111.1111.1111.1111`, `ref:4111 11111111 1111`,
    /// `94111111111111111`): the separators are dropped and every window of the joined digits is
    /// checked, so neither grouping, punctuation nor digits around a card number get it past. It
    /// refuses more ordinary numbers: a chain of 12 digits one time in ten, longer chains more
    /// often (most of 16 digits and more). Digits split by letters are not joined.
    public static func containsLuhnValidRun(_ text: some StringProtocol) -> Bool {
        let bytes = Array(text.utf8)
        // The digit groups of the current chain, as ranges of `bytes`.
        var groups = [Range<Int>]()
        var index = 0
        while index < bytes.count {
            guard isDigit(bytes[index]) else {
                index += 1
                continue
            }
            var end = index
            while end < bytes.count, isDigit(bytes[end]) { end += 1 }
            groups.append(index..<end)
            index = end
            // One separator followed by a digit continues the chain.
            if index + 1 < bytes.count, !isAlphanumeric(bytes[index]), bytes[index] < 0x80, isDigit(bytes[index + 1]) {
                index += 1
                continue
            }
            if holdsLuhnValidDigits(groups, of: bytes) { return true }
            groups.removeAll(keepingCapacity: true)
        }
        return false
    }

    /// Whether the chain's digits, joined, hold a window of 12 to 19 digits that passes the Luhn
    /// check: every window, not only whole groups, so a PAN behind other digits
    /// (`94111111111111111`, `202612074111111111111111`) is found too.
    private static func holdsLuhnValidDigits(_ groups: [Range<Int>], of bytes: [UInt8]) -> Bool {
        var digits = [UInt8]()
        for group in groups { digits += bytes[group] }
        guard digits.count >= CardInput.panLengths.lowerBound else { return false }
        for start in digits.indices {
            for length in CardInput.panLengths where start + length <= digits.count {
                if Luhn.isValid(digits: digits[start..<start + length]) { return true }
            }
        }
        return false
    }

    private static func isDigit(_ byte: UInt8) -> Bool { (48...57).contains(byte) }

    private static func isCardNumber(_ digits: [UInt8]) -> Bool {
        (13...19).contains(digits.count) && CardBrand(panDigits: digits) != .unknown && Luhn.isValid(digits: digits)
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "A")...UInt8(ascii: "Z"):
            true
        default: false
        }
    }
}
