"""Secret access tokens of a reader study: made once, shown once, stored only as hashes.

A token is 32 random bytes from :mod:`secrets` (256 bits), URL-safe base64. Because tokens carry that
much entropy, a plain SHA-256 digest is a safe way to store them: unlike passwords they cannot be
guessed, so the slow salted hashes made for passwords (scrypt, argon2) would add nothing but latency.
Every comparison uses :func:`hmac.compare_digest` and visits every stored hash, so neither the
position of a match nor the length of a common prefix shows in the response time.
"""

import hashlib
import hmac
import secrets
from collections.abc import Iterable

TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128
"""Longer strings are refused before hashing; real tokens have 43 characters."""


def new_token() -> str:
    """A fresh random token, 43 URL-safe characters."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest of ``token`` (UTF-8), as stored in the study."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def matching_key(token: str, hashes: Iterable[tuple[int, str]]) -> int | None:
    """The key whose stored hash matches ``token``, compared in constant time.

    Args:
        token: the token presented by a client (untrusted).
        hashes: ``(key, sha256_hex)`` pairs of every valid token.

    Returns:
        The key of the matching hash, or None when no hash matches (or the token is absurdly long).
    """
    if len(token) > MAX_TOKEN_LENGTH:
        return None
    presented = hash_token(token).encode("ascii")
    found: int | None = None
    for key, stored in hashes:
        # No early exit: every stored hash is compared whatever the outcome.
        if hmac.compare_digest(presented, stored.encode("ascii")):
            found = key
    return found
