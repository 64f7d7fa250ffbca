from models.errors import HTTP_STATUS, ErrorCode, OfferhubError, status_of
from models.ids import IdPrefix, delivery_id, is_id, new_id


def test_new_ids_have_prefix_and_21_url_safe_chars() -> None:
    for prefix in IdPrefix:
        if prefix is IdPrefix.WEBHOOK_DELIVERY:
            continue
        value = new_id(prefix)
        assert value.startswith(prefix.value + "_") and len(value) == len(prefix.value) + 22
        assert is_id(value, prefix)
        assert not is_id(value.replace(prefix.value, "zz", 1), prefix)


def test_wrong_prefix_and_types_are_not_ids() -> None:
    assert not is_id(new_id(IdPrefix.ORDER), IdPrefix.USER)
    assert not is_id(None, IdPrefix.USER)
    assert not is_id("usr_short", IdPrefix.USER)


def test_delivery_ids_are_deterministic() -> None:
    event, endpoint = new_id(IdPrefix.EVENT), new_id(IdPrefix.WEBHOOK_ENDPOINT)
    assert delivery_id(event, endpoint) == f"whd_{event}_{endpoint}"
    assert is_id(delivery_id(event, endpoint), IdPrefix.WEBHOOK_DELIVERY)


def test_every_code_has_a_status_and_unknown_codes_are_500() -> None:
    assert set(HTTP_STATUS) == set(ErrorCode)
    assert status_of("INSUFFICIENT_FUNDS") == 422
    assert status_of("ESCROW_OVERDRAWN") == 500
    assert status_of("SOMETHING_NEW") == 500


def test_error_body_is_the_envelope() -> None:
    error = OfferhubError(ErrorCode.INVALID_STATE, "nope", {"order_id": "ord_x"})
    assert error.status == 409
    assert error.body() == {"error": {"code": "INVALID_STATE", "message": "nope", "details": {"order_id": "ord_x"}}}


def test_a_resource_with_an_error_field_of_its_own_is_storable() -> None:
    from api.idempotency import is_storable

    assert is_storable(202, {"id": 1, "status": "RUNNING", "error": None})
    assert not is_storable(409, {"error": {"code": "IDEMPOTENCY_KEY_IN_PROGRESS"}})
