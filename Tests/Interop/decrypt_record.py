#!/usr/bin/env python3
# =============================================================================
#  TEST TOOL ONLY. NOT FOR PRODUCTION VAULTS.
#
#  An independent implementation of docs/CRYPTO.md, written from that document
#  alone with a stock libsodium binding (PyNaCl) and the standard library. It
#  exists to prove that the documented formats are complete and correct: given
#  the master key file and vault.db it unwraps the key ring, derives the root
#  subkeys, opens a card record, checks its token binding and fingerprint, and
#  recomputes the audit MAC chain and checks both of its sealed heads.
#
#  It prints a PAN because proving the format on TEST cards is its whole
#  purpose. Outside the interop test it would be a detokenization path that
#  bypasses the vault's scope checks and audit log, so never run it against
#  a vault that holds real cardholder data (PCI DSS 3.3, 3.5, 7.2, 10.2).
#  It never prints a CVV, and cannot decrypt one: a held CVV is sealed under
#  an epoch key that lives only in the server's memory (CRYPTO.md §7). The tool
#  checks exactly that: no key the master key and vault.db give opens it.
# =============================================================================
"""Decrypt a test card record, or verify the audit chain, of a vault.db.

Usage:
  decrypt_record.py --master-key Keys/master.key --db data/vault.db --token TOKEN [--expect-cvv 123]
  decrypt_record.py --master-key Keys/master.key --db data/vault.db --verify-audit [--audit-head PATH]

Output (one JSON object on stdout):
  token mode:  {"token", "pan", "exp_month", "exp_year", "key_version", "fingerprint_ok",
                "caller_fingerprint" (the fingerprint the token's creator sees, CRYPTO.md §8.1),
                "format", "token_format_ok", "metadata_ok", "cvv_held", "cvv_ok"}
               cvv_ok: null without a CVV row; true if the row's envelope is a CVV envelope (format
               0x02, §7) naming the row's epoch, and neither the root key nor any data key opens it.
  audit mode:  {"ok", "records"} plus "first_bad_record" and "reason" when not ok. The head file
               is audit.head in the database's folder unless --audit-head names another.
Exit status: 0 when every check passed, 1 when a check failed or a record does not open,
2 for a usage error or an unreadable input.
"""

from __future__ import annotations

from typing import NoReturn

import argparse
import hashlib
import hmac
import json
import os
import sqlite3
import stat
import struct
import sys
import time

try:
    import nacl.bindings
    from nacl.exceptions import CryptoError
    from nacl.secret import SecretBox
except ImportError:  # pragma: no cover - the run script installs it
    sys.stderr.write("decrypt_record.py needs PyNaCl: pip install pynacl\n")
    sys.exit(2)

# --- docs/CRYPTO.md §2: primitives -------------------------------------------------------

KEY_BYTES = 32  # crypto_secretbox_KEYBYTES = crypto_kdf_KEYBYTES
NONCE_BYTES = 24  # crypto_secretbox_NONCEBYTES
MAC_BYTES = 16  # crypto_secretbox_MACBYTES
assert SecretBox.KEY_SIZE == KEY_BYTES and SecretBox.NONCE_SIZE == NONCE_BYTES and SecretBox.MACBYTES == MAC_BYTES


class FormatError(Exception):
    """A stored value does not follow docs/CRYPTO.md (or fails authentication)."""


def secretbox_open(key: bytes, box: bytes) -> bytes:
    """Opens `nonce (24) ‖ MAC (16) ‖ ciphertext` (§2)."""
    if len(box) < NONCE_BYTES + MAC_BYTES:
        raise FormatError("box shorter than nonce + MAC")
    try:
        return SecretBox(key).decrypt(box[NONCE_BYTES:], box[:NONCE_BYTES])
    except CryptoError:
        raise FormatError("secretbox authentication failed") from None


def keyed_blake2b(key: bytes, message: bytes, size: int) -> bytes:
    """crypto_generichash with a key (§2): plain keyed BLAKE2b."""
    return hashlib.blake2b(message, digest_size=size, key=key).digest()


def kdf(root: bytes, subkey_id: int, context: bytes, size: int = 32) -> bytes:
    """crypto_kdf_derive_from_key (§6)."""
    assert len(root) == 32 and len(context) == 8
    derive = getattr(nacl.bindings, "crypto_kdf_derive_from_key", None)
    if derive is not None:  # newer PyNaCl releases expose it
        return derive(size, subkey_id, context, root)
    # libsodium's definition: BLAKE2b keyed with the root key, salt = LE64(id) ‖ 0^8,
    # personalisation = context ‖ 0^8, empty message.
    return hashlib.blake2b(
        b"",
        digest_size=size,
        key=root,
        salt=struct.pack("<Q", subkey_id) + bytes(8),
        person=context + bytes(8),
    ).digest()


def die(message: str) -> NoReturn:
    """An unreadable or invalid input: exit status 2."""
    sys.stderr.write(f"decrypt_record.py: {message}\n")
    sys.exit(2)


# --- §3: the master key file -------------------------------------------------------------


def load_master_key(path: str) -> bytes:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        die(f"master key {path}: file not found")
    if not stat.S_ISREG(info.st_mode):
        die(f"master key {path}: not a regular file")
    if info.st_mode & 0o077:
        die(f"master key {path}: mode {info.st_mode & 0o777:o} lets group or others access it")
    if info.st_size != KEY_BYTES:
        die(f"master key {path}: is {info.st_size} bytes; a master key is exactly 32 raw bytes")
    with open(path, "rb") as handle:
        key = handle.read()
    if len(key) != KEY_BYTES:
        die(f"master key {path}: short read")
    return key


# --- §5: wrapped keys --------------------------------------------------------------------

LABEL_ROOT = b"ROOT"
LABEL_DATA_KEY = b"DEK1"


def unwrap(wrapped: bytes, label: bytes, version: int, master: bytes) -> bytes:
    try:
        plaintext = secretbox_open(master, wrapped)
    except FormatError:
        raise FormatError(f"the master key does not open the wrapped {label.decode()} key v{version}") from None
    if len(plaintext) != 40:
        raise FormatError(f"wrapped {label.decode()} key v{version}: plaintext is {len(plaintext)} bytes, not 40")
    if plaintext[:4] != label or plaintext[4:8] != struct.pack(">I", version):
        raise FormatError(f"wrapped key is bound to {plaintext[:4]!r} v{struct.unpack('>I', plaintext[4:8])[0]}, "
                          f"not {label.decode()} v{version}")
    return plaintext[8:]


# --- §6: root subkeys --------------------------------------------------------------------

SUBKEY_ID = 1
CONTEXT_FINGERPRINT = b"CARDFPRT"
CONTEXT_CALLER_FINGERPRINT = b"CALLERFP"
CONTEXT_CREDENTIALS = b"APICREDS"
CONTEXT_AUDIT = b"AUDITMAC"
CONTEXT_ROW_MAC = b"ROWMAC__"


def row_mac(key: bytes, table: str, fields: list) -> bytes:
    """The row MAC of §10: "vault-row" ‖ str table ‖ u32 BE n ‖ fields; an int is 8 bytes BE,
    a str its UTF-8, bytes as they are, None is ff ff ff ff; each but None length-prefixed."""
    def field(value) -> bytes:
        if value is None:
            return b"\xff\xff\xff\xff"
        if isinstance(value, int):
            data = struct.pack(">q", value)
        elif isinstance(value, str):
            data = value.encode("utf-8")
        else:
            data = bytes(value)
        return struct.pack(">I", len(data)) + data
    name = table.encode("utf-8")
    message = b"vault-row" + struct.pack(">I", len(name)) + name + struct.pack(">I", len(fields))
    return keyed_blake2b(key, message + b"".join(field(f) for f in fields), 32)


# --- §7: record envelopes ----------------------------------------------------------------

ENVELOPE_FORMAT = 0x01
CVV_ENVELOPE_FORMAT = 0x02  # sealed under an in-memory epoch key, never a data key
CVV_HEADER_BYTES = 9
PLAINTEXT_FORMAT = 0x01
KIND_CARD = 0x50  # 'P'
KIND_CVV = 0x43  # 'C'
HEADER_BYTES = 5


def cvv_envelope_epoch(envelope: bytes) -> int:
    if len(envelope) < CVV_HEADER_BYTES + NONCE_BYTES + MAC_BYTES:
        raise FormatError("CVV envelope shorter than header + nonce + MAC")
    if envelope[0] != CVV_ENVELOPE_FORMAT:
        raise FormatError(f"CVV envelope format byte is 0x{envelope[0]:02x}, not 0x{CVV_ENVELOPE_FORMAT:02x}")
    return struct.unpack(">Q", envelope[1:9])[0]


def envelope_version(envelope: bytes) -> int:
    if len(envelope) < HEADER_BYTES + NONCE_BYTES + MAC_BYTES:
        raise FormatError("envelope shorter than header + nonce + MAC")
    if envelope[0] != ENVELOPE_FORMAT:
        raise FormatError(f"unknown envelope format byte 0x{envelope[0]:02x}")
    return struct.unpack(">I", envelope[1:5])[0]


def parse_plaintext(plaintext: bytes, kind: int, token: str) -> tuple[bytes, int | None, int | None]:
    """Checks format, kind and token binding; returns (data digits, exp month, exp year)."""
    token_bytes = token.encode("utf-8")
    if len(plaintext) < 4 or plaintext[0] != PLAINTEXT_FORMAT:
        raise FormatError("unknown plaintext format")
    if plaintext[1] != kind:
        raise FormatError(f"record kind is 0x{plaintext[1]:02x}, expected 0x{kind:02x}")
    token_length = plaintext[2]
    if plaintext[3:3 + token_length] != token_bytes or token_length != len(token_bytes):
        raise FormatError("record is not bound to this token")
    offset = 3 + token_length
    if offset >= len(plaintext):
        raise FormatError("plaintext truncated before the data length")
    data_length = plaintext[offset]
    data = plaintext[offset + 1:offset + 1 + data_length]
    offset += 1 + data_length
    if len(data) != data_length or not data.isdigit():
        raise FormatError("data field is not ASCII digits of the stated length")
    month = year = None
    if kind == KIND_CARD:
        if len(plaintext) != offset + 3:
            raise FormatError(f"card plaintext is {len(plaintext)} bytes, expected {offset + 3}")
        month = plaintext[offset]
        year = struct.unpack(">H", plaintext[offset + 1:offset + 3])[0]
    elif len(plaintext) != offset:
        raise FormatError(f"CVV plaintext is {len(plaintext)} bytes, expected {offset}")
    return data, month, year


def open_envelope(envelope: bytes, kind: int, token: str, data_key_for) -> tuple[int, bytes, int | None, int | None]:
    version = envelope_version(envelope)
    key = data_key_for(version)
    plaintext = secretbox_open(key, envelope[HEADER_BYTES:])
    return (version, *parse_plaintext(plaintext, kind, token))


# --- §9: tokens --------------------------------------------------------------------------

BASE64URL = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def luhn_valid(digits: bytes) -> bool:
    total = 0
    for position, byte in enumerate(reversed(digits)):
        digit = byte - 0x30
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def token_shape_ok(token: str, card_format: str, pan: bytes) -> bool:
    raw = token.encode("utf-8")
    if card_format == "opaque":
        return raw.startswith(b"tok_") and len(raw) == 34 and all(b in BASE64URL for b in raw[4:])
    if card_format == "numeric":
        return (len(raw) == len(pan) and raw.isdigit() and raw[:6] == pan[:6] and raw[-4:] == pan[-4:]
                and not luhn_valid(raw))
    return False


# --- the database (§14) ------------------------------------------------------------------


def open_db(path: str) -> sqlite3.Connection:
    if not os.path.isfile(path):
        die(f"{path}: no such database")
    # mode=rw: never create a file; only SELECTs are issued.
    connection = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
    connection.row_factory = sqlite3.Row
    return connection


class KeyRing:
    """Unwraps keys on demand from system_keys and data_keys (§4, §5, §15 steps 2-4)."""

    def __init__(self, db: sqlite3.Connection, master: bytes):
        self.db = db
        self.master = master
        row = db.execute("SELECT wrapped_key FROM system_keys WHERE name = 'root'").fetchone()
        if row is None:
            raise FormatError("system_keys has no 'root' row: the vault is not initialised")
        self.root = unwrap(bytes(row["wrapped_key"]), LABEL_ROOT, 0, master)
        self._data_keys: dict[int, bytes] = {}

    def every_key(self) -> list[bytes]:
        """The root key and every data key still wrapped in vault.db: all a holder of the master key gets."""
        keys = [self.root]
        for row in self.db.execute("SELECT version FROM data_keys WHERE wrapped_key IS NOT NULL"):
            keys.append(self.data_key(row["version"]))
        return keys

    def subkey(self, context: bytes) -> bytes:
        return kdf(self.root, SUBKEY_ID, context)

    def data_key(self, version: int) -> bytes:
        if version not in self._data_keys:
            row = self.db.execute(
                "SELECT state, wrapped_key, created_at_ms, mac FROM data_keys WHERE version = ?", (version,)
            ).fetchone()
            if row is None:
                raise FormatError(f"data key v{version} does not exist")
            # §13.8: the row must be as the vault wrote it.
            expected = row_mac(self.subkey(CONTEXT_ROW_MAC), "data_keys",
                               [version, row["state"], row["wrapped_key"], row["created_at_ms"]])
            if not isinstance(row["mac"], bytes) or not hmac.compare_digest(expected, row["mac"]):
                raise FormatError(f"data key v{version} fails its row MAC: the row was changed without the key")
            if row["state"] == "retired" or row["wrapped_key"] is None:
                raise FormatError(f"data key v{version} is retired; its records cannot be opened")
            self._data_keys[version] = unwrap(bytes(row["wrapped_key"]), LABEL_DATA_KEY, version, self.master)
        return self._data_keys[version]


def decrypt_token(db: sqlite3.Connection, master: bytes, token: str, expect_cvv: str | None) -> tuple[dict, bool]:
    ring = KeyRing(db, master)
    card = db.execute(
        "SELECT token, format, bin, last4, exp_month, exp_year, fingerprint, key_version, ciphertext, "
        "tenant, created_by FROM cards WHERE token = ?",
        (token,),
    ).fetchone()
    if card is None:
        raise FormatError(f"no card record for token {token}")
    version, pan, month, year = open_envelope(bytes(card["ciphertext"]), KIND_CARD, token, ring.data_key)

    stored_fingerprint = card["fingerprint"]
    fingerprint = keyed_blake2b(ring.subkey(CONTEXT_FINGERPRINT), pan, 16)
    fingerprint_ok = isinstance(stored_fingerprint, bytes) and hmac.compare_digest(fingerprint, stored_fingerprint)
    # §8.1: what the token's creator sees as its fingerprint (reader = creator).
    creator = card["created_by"].encode()
    tenant = card["tenant"].encode()
    caller_message = bytes([len(tenant)]) + tenant + (bytes([len(creator)]) + creator) * 2 + fingerprint
    caller_fingerprint = keyed_blake2b(ring.subkey(CONTEXT_CALLER_FINGERPRINT), caller_message, 16).hex()

    metadata_ok = (
        card["bin"] == pan[:6].decode()
        and card["last4"] == pan[-4:].decode()
        and card["exp_month"] == month
        and card["exp_year"] == year
        and card["key_version"] == version
    )
    result = {
        "token": token,
        "pan": pan.decode("ascii"),
        "exp_month": month,
        "exp_year": year,
        "key_version": version,
        "fingerprint_ok": fingerprint_ok,
        "caller_fingerprint": caller_fingerprint,
        "format": card["format"],
        "token_format_ok": token_shape_ok(token, card["format"], pan),
        "metadata_ok": metadata_ok,
    }

    # §7: a CVV row names an epoch whose key only the server process held, in memory. The check
    # is that the envelope is in that format and that nothing the master key gives opens it.
    cvv_row = db.execute("SELECT epoch, ciphertext, expires_at_ms FROM cvvs WHERE token = ?", (token,)).fetchone()
    result["cvv_held"] = cvv_row is not None and cvv_row["expires_at_ms"] > int(time.time() * 1000)
    cvv_ok = None
    if cvv_row is not None:
        envelope = bytes(cvv_row["ciphertext"])
        try:
            cvv_ok = cvv_envelope_epoch(envelope) == cvv_row["epoch"]
            for key in ring.every_key():
                try:
                    plaintext = secretbox_open(key, envelope[CVV_HEADER_BYTES:])
                except FormatError:
                    continue
                cvv, _, _ = parse_plaintext(plaintext, KIND_CVV, token)
                sys.stderr.write(f"CVV of {token}: opens with a key from the master key and vault.db"
                                 f"{' (and matches --expect-cvv)' if expect_cvv and hmac.compare_digest(cvv, expect_cvv.encode()) else ''}\n")
                cvv_ok = False
        except FormatError as error:
            sys.stderr.write(f"CVV of {token}: {error}\n")
            cvv_ok = False
    elif expect_cvv is not None:
        cvv_ok = False
    result["cvv_ok"] = cvv_ok

    ok = fingerprint_ok and metadata_ok and result["token_format_ok"] and cvv_ok is not False
    return result, ok


# --- §11: the audit chain ----------------------------------------------------------------

ABSENT = b"\xff\xff\xff\xff"


def _field(value: str | None) -> bytes:
    if value is None:
        return ABSENT
    encoded = value.encode("utf-8")
    return struct.pack(">I", len(encoded)) + encoded


def _text(row: sqlite3.Row, column: str, optional: bool = False) -> str | None:
    """A TEXT column as the log writes it: a string (or NULL where the field is optional)."""
    value = row[column]
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise FormatError(f"audit record {row['sequence']}: {column} is {type(value).__name__}, not text")
    return value


def _integer(row: sqlite3.Row, column: str) -> int:
    value = row[column]
    if not isinstance(value, int):
        raise FormatError(f"audit record {row['sequence']}: {column} is {type(value).__name__}, not an integer")
    return value


def canonical(row: sqlite3.Row) -> bytes:
    try:
        objects = json.loads(_text(row, "objects"))
    except ValueError:
        raise FormatError(f"audit record {row['sequence']}: objects is not JSON") from None
    if not isinstance(objects, list) or not all(isinstance(o, str) for o in objects):
        raise FormatError(f"audit record {row['sequence']}: objects is not a JSON array of strings")
    parts = [
        struct.pack(">Q", _integer(row, "sequence") & 0xFFFFFFFFFFFFFFFF),
        struct.pack(">Q", _integer(row, "time_ms") & 0xFFFFFFFFFFFFFFFF),
        _field(_text(row, "actor")),
        _field(_text(row, "type")),
        _field(_text(row, "outcome")),
        _field(_text(row, "origin")),
        struct.pack(">Q", len(objects)),
        *(_field(o) for o in objects),
        _field(_text(row, "purpose", optional=True)),
        _field(_text(row, "reference", optional=True)),
        _field(_text(row, "detail", optional=True)),
    ]
    return b"".join(parts)


HEAD_FILE_MAGIC = b"VAH1"
HEAD_FILE_BYTES = 4 + 8 + 32 + 32


def head_mac(audit_key: bytes, sequence: int, mac: bytes) -> bytes:
    """The seal of a head (§11): BLAKE2b-256(key = A, "audit-head" ‖ u64 BE sequence ‖ mac)."""
    return keyed_blake2b(audit_key, b"audit-head" + struct.pack(">Q", sequence & 0xFFFFFFFFFFFFFFFF) + mac, 32)


def genesis_detail(audit_key: bytes, created_at_ms: int) -> str:
    """The genesis record's detail (§11): "genesis=" ‖ hex(BLAKE2b-256(A, "audit-genesis" ‖ u64 BE c))."""
    message = b"audit-genesis" + struct.pack(">Q", created_at_ms & 0xFFFFFFFFFFFFFFFF)
    return "genesis=" + keyed_blake2b(audit_key, message, 32).hex()


def verify_audit(db: sqlite3.Connection, master: bytes, head_file: str) -> dict:
    ring = KeyRing(db, master)
    audit_key = ring.subkey(CONTEXT_AUDIT)
    # The head file first, then the log: the vault writes the file after each commit, so read in
    # this order the file can only lag the database, never run ahead of it (§16 step 5).
    try:
        with open(head_file, "rb") as handle:
            file_bytes: bytes | None = handle.read()
    except FileNotFoundError:
        file_bytes = None
    except OSError as error:
        die(f"head file {head_file}: {error.strerror}")
    db.execute("BEGIN")  # one read snapshot for the whole check
    # §16 step 6: with a key ring, record 1 is the genesis record, unless a sealed marker says the
    # log predates genesis records.
    root = db.execute("SELECT created_at_ms FROM system_keys WHERE name = 'root'").fetchone()
    genesis = None if root is None else genesis_detail(audit_key, root["created_at_ms"])
    has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vault_meta'").fetchone()
    marker = has_meta and db.execute(
        "SELECT value, mac FROM vault_meta WHERE name = 'audit_genesis'").fetchone()
    if marker and marker["value"] == "legacy" and isinstance(marker["mac"], bytes) and hmac.compare_digest(
            row_mac(ring.subkey(CONTEXT_ROW_MAC), "vault_meta", ["audit_genesis", "legacy"]), marker["mac"]):
        genesis = "legacy"
    previous = bytes(32)
    macs = [previous]  # macs[n] = mac_n
    expected = 0
    for row in db.execute("SELECT * FROM audit_log ORDER BY sequence"):
        expected += 1
        if row["sequence"] != expected:
            return {"ok": False, "records": expected - 1, "first_bad_record": min(row["sequence"], expected),
                    "reason": f"sequence gap: expected {expected}, found {row['sequence']}"}
        try:
            mac = keyed_blake2b(audit_key, previous + canonical(row), 32)
        except (ValueError, FormatError) as error:
            return {"ok": False, "records": expected - 1, "first_bad_record": expected, "reason": str(error)}
        stored = row["mac"]
        if not isinstance(stored, bytes) or not hmac.compare_digest(mac, stored):
            return {"ok": False, "records": expected - 1, "first_bad_record": expected, "reason": "MAC mismatch"}
        if expected == 1 and genesis not in (None, "legacy") and row["detail"] != genesis:
            return {"ok": False, "records": 0, "first_bad_record": 1,
                    "reason": "the first record is not the genesis record of this vault's key ring"}
        previous = mac
        macs.append(mac)

    def cut(reason: str) -> dict:
        return {"ok": False, "records": expected, "first_bad_record": expected + 1, "reason": reason}

    # §16 step 4: audit_head must be sealed and name exactly the last record.
    head = db.execute("SELECT sequence, mac, head_mac FROM audit_head WHERE id = 1").fetchone()
    if head is None:
        if expected > 0:
            return cut(f"log has {expected} records but audit_head is missing")
    else:
        sequence, mac, sealed = head["sequence"], head["mac"], head["head_mac"]
        if not (isinstance(sequence, int) and isinstance(mac, bytes) and isinstance(sealed, bytes)
                and hmac.compare_digest(head_mac(audit_key, sequence, mac), sealed)):
            return cut("audit_head is not sealed by the audit key (head_mac)")
        if sequence != expected or not hmac.compare_digest(mac, previous):
            return cut(f"log ends at {expected} but audit_head says {sequence}")

    # §16 step 5: the head file, which may lag the log but never run ahead of it.
    if file_bytes is None:
        if expected > 0:
            return cut(f"the head file {head_file} is missing")
    else:
        if len(file_bytes) != HEAD_FILE_BYTES or file_bytes[:4] != HEAD_FILE_MAGIC:
            return cut(f"the head file {head_file} is malformed")
        (sequence,) = struct.unpack(">Q", file_bytes[4:12])
        mac, sealed = file_bytes[12:44], file_bytes[44:76]
        if not hmac.compare_digest(head_mac(audit_key, sequence, mac), sealed):
            return cut(f"the head file {head_file} is not sealed by the audit key")
        if sequence > expected:
            return cut(f"the head file records {sequence} records but the log has {expected}: records cut")
        if sequence > 0 and not hmac.compare_digest(macs[sequence], mac):
            return {"ok": False, "records": expected, "first_bad_record": sequence,
                    "reason": f"record {sequence} differs from the one the head file sealed"}
    if expected == 0 and genesis is not None:
        return cut("the log is empty but the vault has a key ring")
    return {"ok": True, "records": expected}


# --- command line ------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--master-key", required=True, help="the master key file (32 raw bytes, mode 0600)")
    parser.add_argument("--db", required=True, help="vault.db")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--token", help="decrypt the card record of this token")
    mode.add_argument("--verify-audit", action="store_true",
                      help="recompute the audit MAC chain and check both heads (audit_head and the head file)")
    parser.add_argument("--audit-head", metavar="PATH",
                        help="with --verify-audit: the head file (default: audit.head beside the database)")
    parser.add_argument("--expect-cvv", help="with --token: a CVV must be held, and it must not decrypt "
                        "(with the key ring) to these digits or any others (never printed)")
    args = parser.parse_args(argv)
    if args.audit_head is not None and not args.verify_audit:
        parser.error("--audit-head only applies to --verify-audit")

    master = load_master_key(args.master_key)
    db = open_db(args.db)
    try:
        if args.verify_audit:
            head_file = args.audit_head or os.path.join(os.path.dirname(os.path.abspath(args.db)), "audit.head")
            result = verify_audit(db, master, head_file)
            print(json.dumps(result))
            return 0 if result["ok"] else 1
        result, ok = decrypt_token(db, master, args.token, args.expect_cvv)
        print(json.dumps(result))
        return 0 if ok else 1
    except FormatError as error:
        sys.stderr.write(f"decrypt_record.py: {error}\n")
        return 1
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
