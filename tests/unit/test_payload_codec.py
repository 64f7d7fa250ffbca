import secrets

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.contrib.pydantic import pydantic_data_converter

from api.payload_codec import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    PayloadKeyError,
    data_converter,
    decode_messages,
    key_id,
)
from settings import Settings

OLD, NEW = secrets.token_bytes(32), secrets.token_bytes(32)


def plain(value: object) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


async def test_a_payload_is_sealed_with_the_key_id_in_its_metadata_and_opens_again() -> None:
    codec = EncryptionCodec(NEW)
    original = plain({"email": "ana@example.com", "comment": "the seller never delivered"})
    [sealed] = await codec.encode([original])
    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID] == key_id(NEW).encode()
    assert b"ana@example.com" not in sealed.SerializeToString() and b"json/plain" not in sealed.data
    assert await codec.decode([sealed]) == [original]


async def test_payloads_it_did_not_encode_pass_through_like_a_signal_typed_in_the_temporal_ui() -> None:
    typed = Payload(metadata={"encoding": b"json/plain"}, data=b'{"decision": "FULL_REFUND"}')
    assert await EncryptionCodec(NEW).decode([typed]) == [typed]


async def test_after_rotation_old_payloads_decode_and_new_ones_use_the_new_key() -> None:
    [old] = await EncryptionCodec(OLD).encode([plain("before rotation")])
    rotated = EncryptionCodec.from_hex(NEW.hex(), f"{secrets.token_hex(32)}, {OLD.hex()}")
    assert await rotated.decode([old]) == [plain("before rotation")]
    [new] = await rotated.encode([plain("after")])
    assert new.metadata[KEY_ID] == key_id(NEW).encode()
    with pytest.raises(PayloadKeyError, match=key_id(NEW)):
        await EncryptionCodec(OLD).decode([new])


async def test_a_tampered_or_relabelled_payload_does_not_open() -> None:
    codec = EncryptionCodec(NEW, [OLD])
    [sealed] = await codec.encode([plain("x")])
    flipped = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID: key_id(OLD).encode()}, data=sealed.data)
    for bad in (flipped, relabelled):
        with pytest.raises(PayloadKeyError, match="does not authenticate"):
            await codec.decode([bad])


async def test_every_payload_of_a_history_event_decodes_in_place() -> None:
    codec = EncryptionCodec(NEW)
    event = HistoryEvent(event_id=7)
    signaled = event.workflow_execution_signaled_event_attributes
    signaled.input.payloads.extend(await codec.encode([plain({"actor": "ops@example.com"}), plain(1)]))
    signaled.header.fields["trace"].CopyFrom((await codec.encode([plain("t")]))[0])
    assert await decode_messages(codec, [event]) == 3
    assert list(signaled.input.payloads) == [plain({"actor": "ops@example.com"}), plain(1)]
    assert signaled.header.fields["trace"] == plain("t")


def test_the_data_converter_is_pydantic_and_adds_the_codec_only_with_a_key() -> None:
    base = {
        "offerhub_master_key": "m" * 32,
        "wallet_encryption_key": "ab" * 32,
        "trustless_work_api_key": "k",
        "trustless_work_webhook_secret": "s",
    }
    assert data_converter(Settings(_env_file=None, **base)) is pydantic_data_converter  # type: ignore[arg-type]
    keyed = Settings(_env_file=None, **base, temporal_payload_encryption_key=NEW.hex())  # type: ignore[arg-type]
    converter = data_converter(keyed)
    assert isinstance(converter.payload_codec, EncryptionCodec) and converter.payload_codec.current_id == key_id(NEW)
    assert type(converter.payload_converter) is type(pydantic_data_converter.payload_converter)
