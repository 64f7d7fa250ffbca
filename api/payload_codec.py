"""Temporal payload encryption (architecture.md: PII out of Temporal's storage).

With TEMPORAL_PAYLOAD_ENCRYPTION_KEY set, every payload the API, the worker and the CLI hand
to Temporal (workflow and activity inputs and results, Signals, Updates, queries, failure
details, memos) is sealed with AES-256-GCM before it leaves the process. Stored form: a
payload whose metadata says `encoding: binary/encrypted` and `encryption-key-id: <kid>`
(kid = first 8 hex of SHA-256(key), as for wallet secrets) and whose data is
`nonce (12 bytes) || ciphertext` of the original payload (metadata included), with the
kid as associated data.

Rotation: encode with the current key, decode with any known one
(TEMPORAL_PAYLOAD_ENCRYPTION_PREVIOUS_KEYS), picked by the payload's kid; an unknown kid is
an error naming it. A payload this codec did not encode (a Signal typed as plain JSON in the
Temporal UI, a history recorded before the key was set) passes through unchanged.

Not encrypted, by Temporal's design: workflow IDs and types, search attributes, and failure
messages (our messages carry codes, never user data; failure *details* are payloads).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class PayloadKeyError(ValueError):
    """An encrypted payload this process cannot open: unknown key id, or tampered bytes."""


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def parse_keys(current_hex: str, previous_hex: str | None = None) -> list[bytes]:
    """The current key first, then the decrypt-only ones (`hex,hex,…`); each 32 bytes."""
    texts = [current_hex, *(previous_hex or "").split(",")]
    keys: list[bytes] = []
    for text in (t.strip() for t in texts):
        if not text:
            continue
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise ValueError("payload encryption keys are 64 hex characters (32 bytes)")
        keys.append(key)
    return keys


class EncryptionCodec(PayloadCodec):
    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        super().__init__()
        self.current_id = key_id(current)
        self._keys = {key_id(key): AESGCM(key) for key in (*previous, current)}

    @classmethod
    def from_hex(cls, current_hex: str, previous_hex: str | None = None) -> EncryptionCodec:
        current, *previous = parse_keys(current_hex, previous_hex)
        return cls(current, previous)

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(payload) if is_encrypted(payload) else payload for payload in payloads]

    def seal(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        kid = self.current_id
        sealed = self._keys[kid].encrypt(nonce, payload.SerializeToString(), _context(kid))
        return Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=nonce + sealed)

    def open(self, payload: Payload) -> Payload:
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._keys.get(kid)
        if cipher is None:
            raise PayloadKeyError(
                f"payload encrypted with key {kid or '(none)'}, which is neither "
                "TEMPORAL_PAYLOAD_ENCRYPTION_KEY nor one of TEMPORAL_PAYLOAD_ENCRYPTION_PREVIOUS_KEYS"
            )
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], _context(kid))
        except InvalidTag:
            raise PayloadKeyError(f"payload encrypted with key {kid} does not authenticate") from None
        return Payload.FromString(plain)


def _context(kid: str) -> bytes:
    return f"offerhub/temporal-payload/v1|{kid}".encode()


def is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


def payload_codec(settings: Settings) -> EncryptionCodec | None:
    """The codec of these settings, or None when TEMPORAL_PAYLOAD_ENCRYPTION_KEY is unset."""
    if settings.temporal_payload_encryption_key is None:
        return None
    previous = settings.temporal_payload_encryption_previous_keys
    return EncryptionCodec.from_hex(
        settings.temporal_payload_encryption_key.get_secret_value(),
        previous.get_secret_value() if previous is not None else None,
    )


def data_converter(settings: Settings) -> DataConverter:
    """The one data converter of every Temporal client of the product (API, worker, CLI, tests):
    pydantic JSON, sealed by the payload codec when a key is set."""
    codec = payload_codec(settings)
    if codec is None:
        return pydantic_data_converter
    return DataConverter(payload_converter_class=PydanticPayloadConverter, payload_codec=codec)


# whole messages (histories) ---------------------------------------------------------------


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload inside a protobuf message (a history event, a whole history), in place."""
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is None:
                continue
            items = list(value.values())
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Payload):
                yield item
            else:
                yield from payloads_in(item)


def count_encrypted(messages: Sequence[Message]) -> int:
    return sum(is_encrypted(p) for message in messages for p in payloads_in(message))


async def decode_messages(codec: PayloadCodec, messages: Sequence[Message]) -> int:
    """Decode every payload of `messages` in place; return how many were encrypted."""
    found = [p for message in messages for p in payloads_in(message)]
    encrypted = sum(is_encrypted(p) for p in found)
    for payload, decoded in zip(found, await codec.decode(found), strict=True):
        if decoded is not payload:
            payload.CopyFrom(decoded)
    return encrypted
