"""Every activity a workflow calls is declared once in models/steps.py and implemented once,
under that name, with the declared input and output types."""

from __future__ import annotations

import inspect
import typing
from typing import Any

from temporalio.activity import _Definition

from models import steps
from settings import Settings
from worker import activities_for


def registered() -> dict[str, Any]:
    """The worker's activities by registered name (built without connecting to anything)."""
    from activities.context import WorkerContext

    settings = Settings(
        _env_file=None,
        offerhub_master_key="ohk_master_" + "x" * 40,
        wallet_encryption_key="0" * 64,
        trustless_work_api_key="test",
        trustless_work_webhook_secret="test",
    )
    ctx = WorkerContext.build(settings)
    found: dict[str, Any] = {}
    for fn in activities_for(ctx):
        definition = _Definition.must_from_callable(fn)
        assert definition.name not in found, f"{definition.name} registered twice"
        found[str(definition.name)] = fn
    return found


def test_every_step_has_exactly_one_implementation_with_its_types() -> None:
    implementations = registered()
    declared = {step.name: step for step in steps.ALL}
    assert len(declared) == len(steps.ALL), "two steps share a name"
    assert set(declared) == set(implementations), (
        f"declared only: {set(declared) - set(implementations)}; "
        f"implemented only: {set(implementations) - set(declared)}"
    )
    for name, step in declared.items():
        fn = implementations[name]
        hints = typing.get_type_hints(fn)
        parameters = [p for p in inspect.signature(fn).parameters.values()]
        if step.input is not type(None):
            accepted = hints[parameters[0].name]
            assert (typing.get_origin(accepted) or accepted) is step.input, name
        assert hints["return"] is step.output, name
