"""The baseline of the reads benchmark: a bare FastAPI app that reads one order row by primary
key with asyncpg and answers it as JSON. No authentication, rate limit, ORM or relations: the
floor an HTTP read of the same PostgreSQL costs under the same uvicorn.

Started by bench/reads.py as `python bench/reads_baseline.py --serve PORT` (DATABASE_URL in
the environment), with uvicorn's settings of `offerhub api`; run without `--serve` (as
`make bench` runs every file in bench/) it does nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Request

# the API's pool size (settings.database_pool_size), so both sides may hold as many connections
POOL_SIZE = 10


def create_app(dsn: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(dsn, min_size=POOL_SIZE, max_size=POOL_SIZE)
        try:
            yield
        finally:
            await app.state.pool.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str, request: Request) -> dict[str, Any]:
        row = await request.app.state.pool.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
        if row is None:
            raise HTTPException(404)
        return {name: value if isinstance(value, str | int | None) else str(value) for name, value in row.items()}

    return app


def serve(port: int) -> None:
    import uvicorn

    # SQLAlchemy's URL (postgresql+asyncpg://) to asyncpg's DSN
    dsn = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    uvicorn.run(create_app(dsn), host="127.0.0.1", port=port, log_config=None, access_log=False)


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    serve(int(sys.argv[2]))
