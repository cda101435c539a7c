#!/usr/bin/env python3
# =============================================================================
#  TEST TOOL ONLY. NOT FOR PRODUCTION VAULTS.
#
#  An independent implementation of docs/CRYPTO.md, written from that document
#  alone with a stock libsodium binding (PyNaCl) and the standard library. It
#  exists to prove that the documented formats are complete and correct: given
#  the master key file and vault.db it unwraps the key ring (every root-key
#  version and data key), derives each root version's subkeys, opens a card
#  record, checks its token binding and fingerprint (under the root version the
#  row names), checks the row MACs of data_keys, credentials and vault_meta, and
#  recomputes the audit MAC chain across its root-version segments and checks
#  both of its sealed heads.
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
  decrypt_record.py --master-key Keys/master.key --db data/vault.db --verify-rows [--secret-env VAR]
  decrypt_record.py --check-cvv-vectors

Root keys: system_keys row 'root' is root version 0, 'root.N' version N (1, 2, … without a gap),
each wrapped like version 0 with its own version: the newest with label "ROOT", every older one
with label "ROLD" (superseded); the newest is active, and every row MAC is under the newest
version's row MAC key.

Output (one JSON object on stdout):
  token mode:  {"token", "pan", "exp_month", "exp_year", "key_version", "fingerprint_version",
                "fingerprint_ok" (under the CARDFPRT key of the row's fingerprint_version),
                "caller_fingerprint" (the fingerprint the token's creator sees, CRYPTO.md §8.1,
                under the CALLERFP key of that same version),
                "format", "token_format_ok", "metadata_ok", "cvv_held", "cvv_ok", "cvk_version"}
               cvv_ok: null without a CVV row; true if the row's envelope is a CVV envelope (format
               0x02, §7) naming the row's epoch, and no root key (any version) nor data key opens it.
               cvk_version: for a card the vault issued (§21), the card-verification key version;
               with --expect-issued-cvv also "issued_cvv_ok": the CVV derived under that key (its
               row MAC checked, unwrapped with label "CVK1") equals the digits given (never printed).
  vectors mode: {"ok", "vectors"}: the CVV known-answer vectors of §21.
  audit mode:  {"ok", "records", "segments"} plus "first_bad_record" and "reason" when not ok.
               "segments" lists the root version of each segment of the log, oldest first. The
               head file is audit.head in the database's folder unless --audit-head names another.
  rows mode:   {"ok", "root_versions", "data_keys", "credentials", "vault_meta"} plus "problems"
               when not ok: every data_keys, credentials and vault_meta row must pass its row MAC
               under the newest root version, and each credential's hash_version must name a root
               version. With --secret-env VAR (an API secret in that environment variable, never
               on the command line) also "credential_hash_version" and "credential_hash_ok": the
               secret's credential row must hold BLAKE2b-256(APICREDS key of its hash_version,
               secret).
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
import re
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

LABEL_ROOT = b"ROOT"  # the newest root version N is wrapped with version N (0 for the row named 'root')
LABEL_SUPERSEDED_ROOT = b"ROLD"  # every older root version
LABEL_DATA_KEY = b"DEK1"
LABEL_CARD_VERIFICATION_KEY = b"CVK1"


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


def has_column(db: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row["name"] == column for row in db.execute(f"PRAGMA table_info({table})"))


def root_version_of(name: object) -> int | None:
    """The root version a system_keys name denotes: 'root' is 0, 'root.N' is N (N ≥ 1, written
    without leading zeros); any other name is no root key."""
    if name == "root":
        return 0
    if isinstance(name, str):
        match = re.fullmatch(r"root\.([1-9][0-9]*)", name)
        if match:
            return int(match.group(1))
    return None


class KeyRing:
    """Unwraps keys from system_keys and data_keys (§4, §5, §15 steps 2-4): every root-key version
    up front, data keys on demand."""

    def __init__(self, db: sqlite3.Connection, master: bytes):
        self.db = db
        self.master = master
        self.roots: dict[int, bytes] = {}
        self.root_created_at_ms: dict[int, int] = {}
        wrapped: dict[int, bytes] = {}
        for row in db.execute("SELECT name, wrapped_key, created_at_ms FROM system_keys"):
            version = root_version_of(row["name"])
            if version is None:
                continue
            if not isinstance(row["wrapped_key"], bytes):
                raise FormatError(f"root key v{version} has no wrapped key")
            wrapped[version] = row["wrapped_key"]
            self.root_created_at_ms[version] = row["created_at_ms"]
        if not wrapped:
            raise FormatError("system_keys has no 'root' row: the vault is not initialised")
        if sorted(wrapped) != list(range(len(wrapped))):
            raise FormatError(f"the root-key versions {sorted(wrapped)} are not 0, 1, 2 … without a gap")
        self.newest = max(wrapped)  # the active root version
        for version, box in wrapped.items():
            label = LABEL_ROOT if version == self.newest else LABEL_SUPERSEDED_ROOT
            self.roots[version] = unwrap(box, label, version, master)
        self._data_keys: dict[int, bytes] = {}

    def every_key(self) -> list[bytes]:
        """Every root key and every data key still wrapped in vault.db: all a holder of the master key gets."""
        keys = [self.roots[version] for version in sorted(self.roots)]
        for row in self.db.execute("SELECT version FROM data_keys WHERE wrapped_key IS NOT NULL"):
            keys.append(self.data_key(row["version"]))
        return keys

    def subkey(self, context: bytes, version: int | None = None) -> bytes:
        """A subkey (§6) of root version `version`, by default the newest."""
        version = self.newest if version is None else version
        if version not in self.roots:
            raise FormatError(f"there is no root key v{version}")
        return kdf(self.roots[version], SUBKEY_ID, context)

    def row_mac_key(self) -> bytes:
        """Every row MAC is under the newest root version's row MAC key."""
        return self.subkey(CONTEXT_ROW_MAC)

    def data_key_row_ok(self, row: sqlite3.Row) -> bool:
        expected = row_mac(self.row_mac_key(), "data_keys",
                           [row["version"], row["state"], row["wrapped_key"], row["created_at_ms"]])
        return isinstance(row["mac"], bytes) and hmac.compare_digest(expected, row["mac"])

    def card_verification_key(self, version: int) -> bytes:
        """The card-verification key of `version` (§21), its row MAC checked first."""
        row = self.db.execute(
            "SELECT version, wrapped_key, created_at_ms, mac FROM card_verification_keys WHERE version = ?",
            (version,)).fetchone()
        if row is None:
            raise FormatError(f"card-verification key v{version} does not exist")
        if not card_verification_key_row_ok(self.row_mac_key(), row):
            raise FormatError(f"card-verification key v{version} fails its row MAC")
        return unwrap(bytes(row["wrapped_key"]), LABEL_CARD_VERIFICATION_KEY, version, self.master)

    def data_key(self, version: int) -> bytes:
        if version not in self._data_keys:
            row = self.db.execute(
                "SELECT version, state, wrapped_key, created_at_ms, mac FROM data_keys WHERE version = ?", (version,)
            ).fetchone()
            if row is None:
                raise FormatError(f"data key v{version} does not exist")
            # §13.8: the row must be as the vault wrote it.
            if not self.data_key_row_ok(row):
                raise FormatError(f"data key v{version} fails its row MAC: the row was changed without the key")
            if row["state"] == "retired" or row["wrapped_key"] is None:
                raise FormatError(f"data key v{version} is retired; its records cannot be opened")
            self._data_keys[version] = unwrap(bytes(row["wrapped_key"]), LABEL_DATA_KEY, version, self.master)
        return self._data_keys[version]


def decrypt_token(db: sqlite3.Connection, master: bytes, token: str, expect_cvv: str | None,
                  expect_issued_cvv: str | None = None) -> tuple[dict, bool]:
    ring = KeyRing(db, master)
    # fingerprint_version (migration vault.root-versions): the root version whose keys made the
    # fingerprint; absent in an older vault, where every fingerprint is under version 0.
    fingerprint_version_column = "fingerprint_version" if has_column(db, "cards", "fingerprint_version") else "0"
    card = db.execute(
        "SELECT token, format, bin, last4, exp_month, exp_year, fingerprint, fingerprint_prefix, key_version, "
        f"ciphertext, tenant, created_by, {fingerprint_version_column} AS fingerprint_version FROM cards WHERE token = ?",
        (token,),
    ).fetchone()
    if card is None:
        raise FormatError(f"no card record for token {token}")
    version, pan, month, year = open_envelope(bytes(card["ciphertext"]), KIND_CARD, token, ring.data_key)

    # §8 and §8.1 under the root version the row names (rewrap moves it to the newest one).
    fingerprint_version = card["fingerprint_version"]
    if not isinstance(fingerprint_version, int) or fingerprint_version not in ring.roots:
        raise FormatError(f"card {token}: fingerprint_version {fingerprint_version!r} names no root key version")
    stored_fingerprint = card["fingerprint"]
    fingerprint = keyed_blake2b(ring.subkey(CONTEXT_FINGERPRINT, fingerprint_version), pan, 16)
    # The dedupe index column: the first 8 fingerprint bytes as a signed big-endian integer (§8).
    fingerprint_ok = (isinstance(stored_fingerprint, bytes) and hmac.compare_digest(fingerprint, stored_fingerprint)
                      and card["fingerprint_prefix"] == struct.unpack(">q", fingerprint[:8])[0])
    # §8.1: what the token's creator sees as its fingerprint (reader = creator).
    creator = card["created_by"].encode()
    tenant = card["tenant"].encode()
    caller_message = bytes([len(tenant)]) + tenant + (bytes([len(creator)]) + creator) * 2 + fingerprint
    caller_fingerprint = keyed_blake2b(
        ring.subkey(CONTEXT_CALLER_FINGERPRINT, fingerprint_version), caller_message, 16).hex()

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
        "fingerprint_version": fingerprint_version,
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

    # §21: an issued card names the card-verification key its CVV derives under; none is stored.
    cvk_version = (db.execute("SELECT cvk_version FROM cards WHERE token = ?", (token,)).fetchone()[0]
                   if has_column(db, "cards", "cvk_version") else None)
    result["cvk_version"] = cvk_version
    issued_cvv_ok = None
    if expect_issued_cvv is not None:
        issued_cvv_ok = cvk_version is not None and cvv_row is None and hmac.compare_digest(
            issued_cvv(ring.card_verification_key(cvk_version), pan, month, year), expect_issued_cvv.encode())
        result["issued_cvv_ok"] = issued_cvv_ok

    ok = fingerprint_ok and metadata_ok and result["token_format_ok"] and cvv_ok is not False \
        and issued_cvv_ok is not False
    return result, ok


# --- §21: issued cards' CVVs --------------------------------------------------------------


def card_verification_key_row_ok(row_key: bytes, row: sqlite3.Row) -> bool:
    expected = row_mac(row_key, "card_verification_keys", [row["version"], row["wrapped_key"], row["created_at_ms"]])
    return isinstance(row["mac"], bytes) and hmac.compare_digest(expected, row["mac"])


def issued_cvv(cvk: bytes, pan: bytes, month: int, year: int) -> bytes:
    """h = BLAKE2b(key = CVK, "CVV1" ‖ u8 len(PAN) ‖ PAN ‖ MM ‖ YYYY, outlen 16);
    CVV = u64 BE of h[0:8] mod 1000, three ASCII digits."""
    message = b"CVV1" + bytes([len(pan)]) + pan + b"%02d" % month + b"%04d" % year
    value = int.from_bytes(keyed_blake2b(cvk, message, 16)[:8], "big") % 1000
    return b"%03d" % value


CVV_VECTORS = [  # CRYPTO.md §21.3: CVK 80 81 … 9f
    (b"9999991234567893", 12, 2029, b"447"),
    (b"9999991234567893", 1, 2030, b"245"),
    (b"9999990000000089", 2, 2027, b"054"),
    (b"9999999876543210124", 7, 2031, b"579"),
]


def check_cvv_vectors() -> dict:
    cvk = bytes(range(0x80, 0xA0))
    good = sum(hmac.compare_digest(issued_cvv(cvk, pan, month, year), cvv) for pan, month, year, cvv in CVV_VECTORS)
    return {"ok": good == len(CVV_VECTORS), "vectors": len(CVV_VECTORS)}


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


SEGMENT_START_TYPE = "keys.rotate_root"


def segment_detail(old_audit_key: bytes, version: int, sequence: int, mac: bytes) -> str:
    """The detail of the record that starts root version N's segment: "root_version=N previous=" ‖
    hex(BLAKE2b-256(key = the OLD segment's audit key, "audit-segment" ‖ u32 BE N ‖ u64 BE sequence ‖ mac)),
    where (sequence, mac) are those of the record before it, the old segment's last."""
    message = (b"audit-segment" + struct.pack(">I", version) + struct.pack(">Q", sequence & 0xFFFFFFFFFFFFFFFF)
               + mac)
    return f"root_version={version} previous=" + keyed_blake2b(old_audit_key, message, 32).hex()


def genesis_detail(audit_key: bytes, created_at_ms: int) -> str:
    """The genesis record's detail (§11): "genesis=" ‖ hex(BLAKE2b-256(A, "audit-genesis" ‖ u64 BE c))."""
    message = b"audit-genesis" + struct.pack(">Q", created_at_ms & 0xFFFFFFFFFFFFFFFF)
    return "genesis=" + keyed_blake2b(audit_key, message, 32).hex()


def verify_audit(db: sqlite3.Connection, master: bytes, head_file: str) -> dict:
    # The head file first, then the log: the vault writes the file after each commit, so read in
    # this order the file can only lag the database, never run ahead of it (§16 step 5).
    try:
        with open(head_file, "rb") as handle:
            file_bytes: bytes | None = handle.read()
    except FileNotFoundError:
        file_bytes = None
    except OSError as error:
        die(f"head file {head_file}: {error.strerror}")
    db.execute("BEGIN")  # one read snapshot for the whole check (the key ring included)
    ring = KeyRing(db, master)
    audit_keys = {version: ring.subkey(CONTEXT_AUDIT, version) for version in ring.roots}
    # §16 step 6: with a key ring, record 1 is the genesis record (under root version 0, with the
    # 'root' row's creation time), unless a sealed marker says the log predates genesis records.
    genesis = genesis_detail(audit_keys[0], ring.root_created_at_ms[0])
    has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vault_meta'").fetchone()
    marker = has_meta and db.execute(
        "SELECT value, mac FROM vault_meta WHERE name = 'audit_genesis'").fetchone()
    if marker and marker["value"] == "legacy" and isinstance(marker["mac"], bytes) and hmac.compare_digest(
            row_mac(ring.row_mac_key(), "vault_meta", ["audit_genesis", "legacy"]), marker["mac"]):
        genesis = "legacy"
    previous = bytes(32)
    macs = [previous]  # macs[n] = mac_n
    # The log's segments: (first sequence, root version). It starts under root version 0; each
    # keys.rotate_root record starts the next version's segment and is MAC'd under that version.
    segments = [(1, 0)]
    expected = 0

    def segments_so_far() -> list[int]:
        return [version for _, version in segments]

    for row in db.execute("SELECT * FROM audit_log ORDER BY sequence"):
        expected += 1

        def bad(reason: str, first_bad: int = expected, records: int = expected - 1) -> dict:
            return {"ok": False, "records": records, "first_bad_record": first_bad, "reason": reason,
                    "segments": segments_so_far()}

        if row["sequence"] != expected:
            return bad(f"sequence gap: expected {expected}, found {row['sequence']}", min(row["sequence"], expected))
        version = segments[-1][1]
        if row["type"] == SEGMENT_START_TYPE:
            detail = row["detail"]
            match = re.match(r"root_version=([0-9]+) ", detail) if isinstance(detail, str) else None
            if match is None:
                return bad("a root-key rotation record without root_version=<N> previous=<hex> in its detail")
            new_version = int(match.group(1))
            if new_version != version + 1:
                return bad(f"a root-key rotation record names root v{new_version} after a segment under v{version}")
            if new_version not in audit_keys:
                return bad(f"a root-key rotation record names root v{new_version}, which system_keys does not hold")
            if detail != segment_detail(audit_keys[version], new_version, expected - 1, previous):
                return bad(f"the record starting root v{new_version}'s segment does not close the v{version} "
                           "segment (previous= commitment): record altered or forged")
            version = new_version
            segments.append((expected, version))
        try:
            mac = keyed_blake2b(audit_keys[version], previous + canonical(row), 32)
        except (ValueError, FormatError) as error:
            return bad(str(error))
        stored = row["mac"]
        if not isinstance(stored, bytes) or not hmac.compare_digest(mac, stored):
            return bad(f"MAC mismatch (segment of root v{version})")
        if expected == 1 and genesis != "legacy" and row["detail"] != genesis:
            return bad("the first record is not the genesis record of this vault's key ring", 1, 0)
        previous = mac
        macs.append(mac)

    def cut(reason: str) -> dict:
        return {"ok": False, "records": expected, "first_bad_record": expected + 1, "reason": reason,
                "segments": segments_so_far()}

    last_start, last_version = segments[-1]
    # A log cut back to an older segment (by someone holding an older root key) would verify
    # under that key: its last segment must be under the newest root version.
    if expected > 0 and last_version != ring.newest:
        return cut(f"the log's last segment is under root v{last_version} but the newest root key is "
                   f"v{ring.newest}: records cut")

    # §16 step 4: audit_head must be sealed under the last segment's audit key, name that
    # segment's root version, and name exactly the last record.
    key_version_column = "key_version" if has_column(db, "audit_head", "key_version") else "0"
    head = db.execute(
        f"SELECT sequence, mac, head_mac, {key_version_column} AS key_version FROM audit_head WHERE id = 1").fetchone()
    if head is None:
        if expected > 0:
            return cut(f"log has {expected} records but audit_head is missing")
    else:
        sequence, mac, sealed = head["sequence"], head["mac"], head["head_mac"]
        if not (isinstance(sequence, int) and isinstance(mac, bytes) and isinstance(sealed, bytes)
                and hmac.compare_digest(head_mac(audit_keys[last_version], sequence, mac), sealed)):
            return cut(f"audit_head is not sealed by the audit key of root v{last_version} (head_mac)")
        if head["key_version"] != last_version:
            return cut(f"audit_head.key_version is {head['key_version']!r} but the log's last segment is under "
                       f"root v{last_version}")
        if sequence != expected or not hmac.compare_digest(mac, previous):
            return cut(f"log ends at {expected} but audit_head says {sequence}")

    # §16 step 5: the head file, which may lag the log but never run ahead of it. It is sealed
    # under the audit key of the segment its sequence falls in.
    if file_bytes is None:
        if expected > 0:
            return cut(f"the head file {head_file} is missing")
    else:
        if len(file_bytes) != HEAD_FILE_BYTES or file_bytes[:4] != HEAD_FILE_MAGIC:
            return cut(f"the head file {head_file} is malformed")
        (sequence,) = struct.unpack(">Q", file_bytes[4:12])
        mac, sealed = file_bytes[12:44], file_bytes[44:76]
        file_version = [version for start, version in segments if start <= max(sequence, 1)][-1]
        if not hmac.compare_digest(head_mac(audit_keys[file_version], sequence, mac), sealed):
            return cut(f"the head file {head_file} is not sealed by the audit key of root v{file_version}")
        if sequence > expected:
            return cut(f"the head file records {sequence} records but the log has {expected}: records cut")
        if sequence > 0 and not hmac.compare_digest(macs[sequence], mac):
            return {"ok": False, "records": expected, "first_bad_record": sequence,
                    "reason": f"record {sequence} differs from the one the head file sealed",
                    "segments": segments_so_far()}
    if expected == 0:
        return cut("the log is empty but the vault has a key ring")
    return {"ok": True, "records": expected, "segments": segments_so_far()}


# --- §10, §13.8: row MACs and credential hashes --------------------------------------------


def verify_rows(db: sqlite3.Connection, master: bytes, secret: str | None) -> dict:
    """Checks every sealed row under the newest root version's row MAC key, and (given an API
    secret) that its credential's hash is the keyed hash under the row's hash_version."""
    db.execute("BEGIN")
    ring = KeyRing(db, master)
    row_key = ring.row_mac_key()
    problems: list[str] = []

    data_keys = db.execute("SELECT version, state, wrapped_key, created_at_ms, mac FROM data_keys").fetchall()
    active = []
    for row in data_keys:
        version = row["version"]
        if not ring.data_key_row_ok(row):
            problems.append(f"data key v{version} fails its row MAC under root v{ring.newest}")
            continue
        if row["state"] == "retired":
            if row["wrapped_key"] is not None:
                problems.append(f"data key v{version} is retired but still has a wrapped key")
            continue
        try:
            ring.data_key(version)
        except FormatError as error:
            problems.append(str(error))
        if row["state"] == "active":
            active.append(version)
    live = [row["version"] for row in data_keys if row["state"] != "retired"]
    if len(active) != 1 or active[0] != max(live, default=None):
        problems.append(f"the active data key(s) {active} are not exactly the newest non-retired version")

    hash_version_column = "hash_version" if has_column(db, "credentials", "hash_version") else "0"
    credentials = db.execute(
        "SELECT id, name, scopes, purposes, secret_hash, created_at_ms, revoked_at_ms, tenant, mac, "
        f"{hash_version_column} AS hash_version FROM credentials").fetchall()
    for row in credentials:
        fields = [row["id"], row["name"], row["scopes"], row["purposes"], row["secret_hash"], row["created_at_ms"],
                  row["revoked_at_ms"], row["tenant"]]
        if not (isinstance(row["mac"], bytes)
                and hmac.compare_digest(row_mac(row_key, "credentials", fields), row["mac"])):
            problems.append(f"credential {row['id']} fails its row MAC under root v{ring.newest}")
        if row["hash_version"] not in ring.roots:
            problems.append(f"credential {row['id']}: hash_version {row['hash_version']!r} names no root version")

    has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vault_meta'").fetchone()
    meta = db.execute("SELECT name, value, mac FROM vault_meta").fetchall() if has_meta else []
    for row in meta:
        if not (isinstance(row["mac"], bytes) and hmac.compare_digest(
                row_mac(row_key, "vault_meta", [row["name"], row["value"]]), row["mac"])):
            problems.append(f"vault_meta row {row['name']!r} fails its row MAC under root v{ring.newest}")

    has_cvks = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'card_verification_keys'").fetchone()
    cvks = db.execute("SELECT version, wrapped_key, created_at_ms, mac FROM card_verification_keys").fetchall() \
        if has_cvks else []
    for row in cvks:
        if not card_verification_key_row_ok(row_key, row):
            problems.append(f"card-verification key v{row['version']} fails its row MAC under root v{ring.newest}")
            continue
        try:
            unwrap(bytes(row["wrapped_key"]), LABEL_CARD_VERIFICATION_KEY, row["version"], master)
        except FormatError as error:
            problems.append(str(error))

    result = {"ok": not problems, "root_versions": len(ring.roots), "data_keys": len(data_keys),
              "credentials": len(credentials), "vault_meta": len(meta), "card_verification_keys": len(cvks)}
    if secret is not None:
        # §10: vk_<16-character id>_<43 characters>; the row is found by id.
        parts = secret.split("_", 2)
        row = None
        if len(parts) == 3 and parts[0] == "vk" and len(parts[1]) == 16:
            row = next((r for r in credentials if r["id"] == parts[1]), None)
        if row is None:
            problems.append("the secret names no credential")
            result.update(credential_hash_version=None, credential_hash_ok=False)
        else:
            version = row["hash_version"]
            hash_ok = (version in ring.roots and isinstance(row["secret_hash"], bytes) and hmac.compare_digest(
                keyed_blake2b(ring.subkey(CONTEXT_CREDENTIALS, version), secret.encode("utf-8"), 32),
                row["secret_hash"]))
            if not hash_ok:
                problems.append(f"credential {row['id']}: secret_hash is not the hash of the secret under root "
                                f"v{version}")
            result.update(credential_hash_version=version, credential_hash_ok=hash_ok)
    result["ok"] = not problems
    if problems:
        result["problems"] = problems
    return result


# --- command line ------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--master-key", help="the master key file (32 raw bytes, mode 0600)")
    parser.add_argument("--db", help="vault.db")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check-cvv-vectors", action="store_true",
                      help="check the issued-card CVV known-answer vectors of CRYPTO.md §21 (no vault needed)")
    mode.add_argument("--token", help="decrypt the card record of this token")
    mode.add_argument("--verify-audit", action="store_true",
                      help="recompute the audit MAC chain and check both heads (audit_head and the head file)")
    mode.add_argument("--verify-rows", action="store_true",
                      help="check the row MACs of data_keys, credentials and vault_meta under the newest root key")
    parser.add_argument("--audit-head", metavar="PATH",
                        help="with --verify-audit: the head file (default: audit.head beside the database)")
    parser.add_argument("--secret-env", metavar="VAR",
                        help="with --verify-rows: the environment variable holding an API secret whose credential "
                        "hash to check (the secret is never taken from the command line)")
    parser.add_argument("--expect-cvv", help="with --token: a CVV must be held, and it must not decrypt "
                        "(with the key ring) to these digits or any others (never printed)")
    parser.add_argument("--expect-issued-cvv", help="with --token: the card was issued by the vault and its CVV, "
                        "derived under its card-verification key (§21), is these digits (never printed)")
    args = parser.parse_args(argv)
    if args.check_cvv_vectors:
        result = check_cvv_vectors()
        print(json.dumps(result))
        return 0 if result["ok"] else 1
    if args.master_key is None or args.db is None:
        parser.error("--master-key and --db are required")
    if args.expect_issued_cvv is not None and args.token is None:
        parser.error("--expect-issued-cvv only applies to --token")
    if args.audit_head is not None and not args.verify_audit:
        parser.error("--audit-head only applies to --verify-audit")
    if args.secret_env is not None and not args.verify_rows:
        parser.error("--secret-env only applies to --verify-rows")
    secret = None
    if args.secret_env is not None:
        secret = os.environ.get(args.secret_env)
        if not secret:
            parser.error(f"--secret-env: the environment variable {args.secret_env} is not set")

    master = load_master_key(args.master_key)
    db = open_db(args.db)
    try:
        if args.verify_audit:
            head_file = args.audit_head or os.path.join(os.path.dirname(os.path.abspath(args.db)), "audit.head")
            result = verify_audit(db, master, head_file)
            print(json.dumps(result))
            return 0 if result["ok"] else 1
        if args.verify_rows:
            result = verify_rows(db, master, secret)
            print(json.dumps(result))
            return 0 if result["ok"] else 1
        result, ok = decrypt_token(db, master, args.token, args.expect_cvv, args.expect_issued_cvv)
        print(json.dumps(result))
        return 0 if ok else 1
    except FormatError as error:
        sys.stderr.write(f"decrypt_record.py: {error}\n")
        return 1
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
