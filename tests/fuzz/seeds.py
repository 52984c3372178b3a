# SPDX-License-Identifier: MIT
"""Writes the hand-made seed inputs of the libFuzzer targets.

    python3 tests/fuzz/seeds.py

into tests/fuzz/corpus/TARGET/ (fuzz_control, fuzz_journal, fuzz_users,
fuzz_http; fuzz_input's seeds were made by hand). Each seed is a small,
valid or nearly valid input that leads the target deep into its parser:
the fuzzer mutates from there. The regression inputs of bugs the fuzzers
found (tests/fuzz/corpus/TARGET/regress-*) are kept by hand, not here.
"""

import base64
import hashlib
import hmac
import json
import os
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integ"))
import pfwire as w  # noqa: E402

SID = "0a1b2c3d-0000-4000-8000-00000000abcd"


def seed(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(ftype, obj):
    payload = json.dumps(obj, separators=(",", ":")).encode()
    return w.header(ftype, len(payload)) + payload


def chunk(index, offset, data, digest=None):
    payload = w.chunk_payload(index, offset, data, digest)
    return w.header(w.CHUNK, len(payload)) + payload


def control():
    ok_open = {"name": "a.txt", "size": 5, "chunk_size": 65536,
               "head": base64.b64encode(b"hello").decode()}
    seed("fuzz_control", "open_commit_abort", b"\0" + frame(w.OPEN, ok_open) +
         frame(w.COMMIT, {"digest": "00" * 32}) + frame(w.ABORT, {}))
    seed("fuzz_control", "open_empty_commit", b"\0" + frame(w.OPEN, dict(
        ok_open, size=0, head="")) + frame(w.COMMIT, {"digest": "ab" * 32}))
    seed("fuzz_control", "open_resume", b"\0" + frame(w.OPEN, dict(
        ok_open, resume=SID)))
    seed("fuzz_control", "open_resume_hostile", b"\0" + frame(w.OPEN, dict(
        ok_open, resume="\x1b[2J\nforged" + "0" * 25)))
    seed("fuzz_control", "open_bad", b"\0" + frame(w.OPEN, dict(
        ok_open, name="../\u202eexe.txt", chunk_size=65537)) +
        frame(w.OPEN, dict(ok_open, head="aGVsbA==")))
    seed("fuzz_control", "open_exe", b"\0" + frame(w.OPEN, {
        "name": "a.exe", "size": 2, "chunk_size": 1 << 20,
        "head": base64.b64encode(b"MZ").decode()}))
    seed("fuzz_control", "auth_proof", b"\1" + frame(w.AUTH, {
        "mechanism": "SCRAM-SHA-256",
        "message": "n,,n=paraflow,r=abcdefghijkl"}) + frame(w.PROOF, {
            "message": "c=biws,r=abcdefghijkl,p=" +
            base64.b64encode(bytes(32)).decode()}))
    seed("fuzz_control", "join", b"\1" + frame(w.JOIN, {
        "session": SID, "proof": base64.b64encode(bytes(32)).decode()}))
    # fuzz_control's sessions: one chunk of 100 bytes, "pf" + zeros; the
    # one of SID is there at every run, its key all ones, and the
    # connection's HELLO nonce is all zeros.
    data = b"pf" + bytes(98)
    same = {"name": "f.txt", "size": 100, "chunk_size": 65536,
            "head": base64.b64encode(data).decode(), "resume": SID}
    seed("fuzz_control", "resume_commit", b"\0" + frame(w.OPEN, same) +
         frame(w.COMMIT, {"digest": "00" * 32}) + frame(w.ABORT, {}))
    proof = w.join_proof(bytes([1]) * 32, SID, bytes(18))
    seed("fuzz_control", "join_chunk", b"\1" + frame(w.JOIN, {
        "session": SID, "proof": base64.b64encode(proof).decode()}) +
        chunk(0, 0, data) + chunk(0, 0, data))
    seed("fuzz_control", "chunk_ok_again_bad", b"\2" + chunk(0, 0, data) +
         chunk(0, 0, data) + chunk(0, 0, data, bytes(32)))
    seed("fuzz_control", "chunk_bad_head", b"\2" + chunk(0, 0, bytes(100)))
    seed("fuzz_control", "chunk_out_of_range", b"\2" +
         chunk(1, 65536, data) + chunk(0, 0, data[:50]))


def pattern(n):
    return bytes((i * 7 + (i >> 8)) & 0xff for i in range(n))


def record(index, digest):
    rec = struct.pack(">II", index, 0) + digest
    return rec + hashlib.sha256(rec).digest()[:8]


def journal_seed(name, flags, meta, journal):
    raw = json.dumps(meta).encode() if isinstance(meta, dict) else meta
    seed("fuzz_journal", name, bytes([flags]) + struct.pack(">H", len(raw)) +
         raw + journal)


def journal():
    data = pattern(63 * 1024)
    meta = {"session": SID, "name": "a.txt", "client_name": "a.txt",
            "size": 100, "chunk_size": 65536, "user": "paraflow",
            "created": "2026-12-04T00:00:00Z", "created_unix": 1796342400,
            "head": base64.b64encode(data[:100]).decode()}
    good = record(0, w.chunk_digest(0, 0, data[:100]))
    journal_seed("one_chunk", 1, meta, good)
    journal_seed("one_chunk_verify", 0x81, meta, good)
    journal_seed("verify_lost", 0x80, meta, good)
    journal_seed("torn_tail", 0x81, meta, good + good[:20])
    journal_seed("damaged", 1, meta, good[:-1] + b"\0" + good)
    big = dict(meta, size=3 * 65536, head=base64.b64encode(
        data[:512]).decode())
    journal_seed("three_chunks_verify", 0xbf, big, good + record(
        1, w.chunk_digest(1, 65536, b"")) + record(7, bytes(32)))
    journal_seed("bad_meta", 1, dict(meta, session="x", size=-1), good)
    journal_seed("not_json", 1, b"{\"session\": ", good)


def verifier(user, password, salt, it=4096):
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, it)
    ck = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    sk = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b = base64.b64encode
    return ("%s:SCRAM-SHA-256$%d:%s$%s:%s" % (
        user, it, b(salt).decode(), b(hashlib.sha256(ck).digest()).decode(),
        b(sk).decode())).encode()


def users():
    alice = verifier("alice", b"alice-pw", b"0123456789abcdef")
    bob = verifier("bob", b"bob-pw", b"saltsaltsaltsalt")
    seed("fuzz_users", "two", b"\0# users\n" + alice + b"\n\n" + bob + b"\n")
    seed("fuzz_users", "two_add", b"\1" + alice + b"\r\n" + bob)
    seed("fuzz_users", "fuzz_replaced", b"\1" + verifier(
        "fuzz", b"x", b"0123456789abcdef") + b"\n" + alice + b"\n")
    seed("fuzz_users", "duplicate", b"\0" + alice + b"\n" + alice + b"\n")
    seed("fuzz_users", "bad_count", b"\1" + alice.replace(b"$4096:",
                                                           b"$99:") + b"\n")
    seed("fuzz_users", "empty_add", b"\1")


def http():
    for name, size, hdr in (("range_first", 1000, b"bytes=0-99"),
                            ("range_suffix", 1000, b"bytes=-500"),
                            ("range_open", 1000, b"bytes=100-"),
                            ("range_reversed", 1000, b"bytes=5-2"),
                            ("range_many", 1000, b"bytes=0-0,5-9"),
                            ("range_empty_file", 0, b"bytes=0-"),
                            ("range_huge", 2 ** 64 - 1,
                             b"bytes=18446744073709551614-")):
        seed("fuzz_http", name, b"\0" + struct.pack(">Q", size) + hdr)
    for name, hdr, etag in (("etag_same", b'"abc"', b'"abc"'),
                            ("etag_list", b'W/"abc", "def"', b'"def"'),
                            ("etag_star", b"*", b'"x"')):
        seed("fuzz_http", name, b"\1" + hdr + b"\0" + etag)
    for name, token in (("link", b"1700000000." + b"ab" * 32),
                        ("link_future", b"99999999999." + b"0f" * 32),
                        ("link_nodot", b"123"),
                        ("link_overflow", b"99999999999999999999." +
                         b"00" * 32)):
        seed("fuzz_http", name, b"\2" + SID.encode() + b"\0" + token)


def s3():
    for name, xml in (
            ("list_parts", b'<?xml version="1.0" encoding="UTF-8"?>'
             b'<ListPartsResult xmlns="http://s3.amazonaws.com/doc/'
             b'2006-03-01/"><IsTruncated>true</IsTruncated>'
             b'<NextPartNumberMarker>1</NextPartNumberMarker><Part>'
             b'<PartNumber>1</PartNumber><ETag>&quot;ab&quot;</ETag>'
             b'<Size>5242880</Size></Part></ListPartsResult>'),
            ("error", b"<Error><Code>NoSuchUpload</Code><Message></Message>"
             b"<RequestId>tx0</RequestId></Error>"),
            ("dtd", b'<!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>'),
            ("list_objects", b'<ListBucketResult><IsTruncated>true'
             b'</IsTruncated><NextContinuationToken>t1'
             b'</NextContinuationToken><Contents><Key>p/.pf/s/a/record'
             b'</Key><Size>200</Size><ETag>&quot;ab&quot;</ETag>'
             b'</Contents><CommonPrefixes><Prefix>p/.pf/s/b/</Prefix>'
             b'</CommonPrefixes></ListBucketResult>')):
        seed("fuzz_s3", name, b"\0" + xml)
    rec = {"v": 1, "id": "s1", "user": "alice", "name": "data.bin",
           "size": 16777223, "chunk_size": 8388608,
           "head": base64.b64encode(b"pf-data ").decode(),
           "created": 1700000000, "upload": "2~abc"}
    seed("fuzz_s3", "record", b"\2" + json.dumps(rec).encode())
    seed("fuzz_s3", "sum", b"\3" + b"42." + b"ab" * 32)
    for name, t in (("target", b"s3://bucket/a/b"),
                    ("target_bare", b"s3://my.bucket-1"),
                    ("target_dots", b"s3://bkt/a/../b")):
        seed("fuzz_s3", name, b"\1" + t)


control()
journal()
users()
http()
s3()
