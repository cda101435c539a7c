/// The Luhn (mod 10) check of ISO/IEC 7812-1.
public enum Luhn {
    /// `true` when the ASCII digits pass the Luhn check.
    public static func isValid(digits: some BidirectionalCollection<UInt8>) -> Bool {
        checksum(digits: digits) == 0
    }

    /// The Luhn sum modulo 10 of the ASCII digits (0 means valid).
    public static func checksum(digits: some BidirectionalCollection<UInt8>) -> Int {
        var sum = 0
        var double = false
        for byte in digits.reversed() {
            var digit = Int(byte &- 48)
            if double {
                digit *= 2
                if digit > 9 { digit -= 9 }
            }
            sum += digit
            double.toggle()
        }
        return sum % 10
    }
}
