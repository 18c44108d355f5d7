"""The portal's Ed25519 signature: consent receipts and audit-trail exports are JWS signed with one key.

The public half is published at ``/.well-known/jwks.json`` so anyone can verify a document offline.
"""

import json
from functools import cache
from typing import Any, cast

from django.conf import settings
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

ALGORITHM = "Ed25519"


class SignatureInvalid(Exception):
    """The document's signature does not verify against the published key."""


@cache
def signing_key() -> OKPKey:
    return OKPKey.import_key(settings.RECEIPT_SIGNING_KEY)


def public_jwks() -> dict[str, Any]:
    """The JSON Web Key Set published at /.well-known/jwks.json."""
    key = signing_key()
    return {"keys": [key.as_dict(private=False) | {"kid": key.thumbprint(), "use": "sig", "alg": ALGORITHM}]}


def document_sign(payload: dict[str, Any]) -> str:
    """``payload`` as a compact JWS: canonical JSON (sorted keys, no whitespace), signed with our key."""
    key = signing_key()
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact({"alg": ALGORITHM, "kid": key.thumbprint(), "typ": "JWT"}, body, key, [ALGORITHM])


def document_verify(token: str, jwks: dict[str, Any] | None = None) -> dict[str, Any]:
    """The payload of a document whose signature verifies against ``jwks`` (default: ours)."""
    key_set = KeySet.import_key_set(cast(Any, jwks or public_jwks()))
    try:
        result = jws.deserialize_compact(token, key_set, algorithms=[ALGORITHM])
    except (JoseError, ValueError) as error:
        raise SignatureInvalid(str(error)) from error
    payload: dict[str, Any] = json.loads(result.payload)
    return payload
