"""Writes users as a FastAPI/passlib app stores them, as latch's import file.

Usage: export.py N  — prints N users, one JSON object a line, to stdout, and
their passwords (email TAB password) to stderr. Half get passlib's bcrypt
(the FastAPI tutorial's CryptContext(schemes=["bcrypt"])), half passlib's
pbkdf2_sha256, each with passlib's default parameters except bcrypt's cost
(lowered to 4: the test measures nothing, and latch reads the cost from the
hash).
"""

import json
import secrets
import sys

from passlib.context import CryptContext

bcrypt = CryptContext(schemes=["bcrypt"], bcrypt__rounds=4)
pbkdf2 = CryptContext(schemes=["pbkdf2_sha256"])

count = int(sys.argv[1])
for i in range(count):
    email = f"passlib-{i}@example.com"
    password = secrets.token_urlsafe(12)
    context = bcrypt if i % 2 == 0 else pbkdf2
    hashed = context.hash(password)
    assert context.verify(password, hashed)
    print(json.dumps({"email": email, "password_hash": hashed, "name": f"User {i}", "email_verified": True,
                      "created_at": "2024-05-01T12:00:00Z"}))
    print(f"{email}\t{password}", file=sys.stderr)
