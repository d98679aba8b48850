"""SCRAM-SHA-256 and MD5, client side, against published test vectors (the
exchanges with real servers are in test_credentials.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from pg_ambassador.auth import AuthenticationFailed, ScramSha256Client, md5_password, saslprep

# RFC 7677, section 3 (user "user", password "pencil"). PostgreSQL ignores the
# user name in SCRAM (it comes from the start-up packet), so ours is empty,
# which changes the proof; the server side below is computed the RFC's way.
RFC_NONCE = "rOprNGfwEbeRWgbNEkqO"
SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)


def _server_view(
    password: str, client_first_bare: bytes, client_final_without_proof: bytes
) -> tuple[bytes, bytes, bytes]:
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096
    )
    auth = client_first_bare + b"," + SERVER_FIRST + b"," + client_final_without_proof
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored = hashlib.sha256(client_key).digest()
    signature = hmac.new(stored, auth, hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return signature, stored, hmac.new(server_key, auth, hashlib.sha256).digest()


def test_scram_matches_the_rfc_exchange() -> None:
    client = ScramSha256Client("pencil", nonce=RFC_NONCE)
    first = client.client_first()
    assert first == b"n,,n=,r=" + RFC_NONCE.encode()
    final = client.client_final(SERVER_FIRST)
    without_proof, _, proof_attr = final.rpartition(b",")
    assert without_proof == b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    signature, stored, server_signature = _server_view("pencil", first[3:], without_proof)
    proof = base64.b64decode(proof_attr[2:])
    recovered_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    # The server's check: H(proof XOR signature) == StoredKey.
    assert hashlib.sha256(recovered_key).digest() == stored
    client.verify_server_final(b"v=" + base64.b64encode(server_signature))


def test_a_wrong_server_signature_is_refused() -> None:
    client = ScramSha256Client("pencil", nonce=RFC_NONCE)
    client.client_first()
    client.client_final(SERVER_FIRST)
    with pytest.raises(AuthenticationFailed, match="signature is wrong"):
        client.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
    with pytest.raises(AuthenticationFailed, match="rejected"):
        client.verify_server_final(b"e=invalid-proof")


@pytest.mark.parametrize(
    ("server_first", "complaint"),
    [
        (b"r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend ours"),
        (b"r=rOprNGfwEbeRWgbNEkqOxx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", "only 1 SCRAM iterations"),
        (b"r=rOprNGfwEbeRWgbNEkqOxx,i=4096", "incomplete"),
        (b"garbage", "malformed"),
        ("r=\u00e9".encode(), "not ASCII"),
    ],
)
def test_a_bad_challenge_is_refused(server_first: bytes, complaint: str) -> None:
    client = ScramSha256Client("pencil", nonce=RFC_NONCE)
    client.client_first()
    with pytest.raises(AuthenticationFailed, match=complaint):
        client.client_final(server_first)


def test_md5_matches_postgresql() -> None:
    # SELECT 'md5' || md5(md5('secret' || 'alice') || 'salt'), run in PostgreSQL 15.
    assert md5_password("alice", "secret", b"salt") == b"md5986e2194384c07f4fd1df4b1351b3e68"


def test_saslprep_maps_spaces_and_keeps_what_it_cannot_prepare() -> None:
    assert saslprep("pencil") == "pencil"
    assert saslprep("I\u00adX") == "IX"  # soft hyphen maps to nothing
    assert saslprep("a\u00a0b") == "a b"  # non-ASCII space becomes a space
    assert saslprep("\u2168") == "IX"  # NFKC
    assert saslprep("a\u0007b") == "a\u0007b"  # prohibited: used as it is, like PostgreSQL
