import Testing

@Suite("IBAN") struct IBANPlaceholderTests {}
