from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.providers.chain import Chain, open_chain
from tests.support import Stack


@pytest.fixture
async def chain(stack: Stack) -> AsyncIterator[Chain]:
    opened = await open_chain(stack)
    try:
        yield opened
    finally:
        await opened.control.delete("/faults")
        await opened.close()
