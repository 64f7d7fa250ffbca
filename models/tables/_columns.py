"""Column helpers so each table reads as the column list of domain.md §2."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from models.ids import IdPrefix, sql_prefix_check

# Predictable constraint names, so migrations and error messages can refer to them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def id_column(prefix: IdPrefix) -> Any:
    return Field(sa_column=Column(Text, primary_key=True))


def id_check(prefix: IdPrefix, column: str = "id") -> CheckConstraint:
    return CheckConstraint(sql_prefix_check(column, prefix), name=f"{column}_prefix")


def enum_check(column: str, values: Iterable[str]) -> CheckConstraint:
    quoted = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=f"{column}_enum")


def text_col(*, nullable: bool = False, default: str | None = None, **kw: Any) -> Any:
    server = text(f"'{default}'") if default is not None else None
    return Field(default=default, sa_column=Column(Text, nullable=nullable, server_default=server, **kw))


def bigint_col(*, nullable: bool = False, default: Any = None, server_default: str | None = None, **kw: Any) -> Any:
    server = text(server_default) if server_default is not None else None
    return Field(default=default, sa_column=Column(BigInteger, nullable=nullable, server_default=server, **kw))


def int_col(*, nullable: bool = False, default: int | None = None, **kw: Any) -> Any:
    server = text(str(default)) if default is not None else None
    return Field(default=default, sa_column=Column(Integer, nullable=nullable, server_default=server, **kw))


def bool_col(default: bool, **kw: Any) -> Any:
    return Field(
        default=default,
        sa_column=Column(Boolean, nullable=False, server_default=text("true" if default else "false"), **kw),
    )


def time_col(*, nullable: bool = True, **kw: Any) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, **kw))


def created_at_col() -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), nullable=False, server_default=text("now()")))


def jsonb_col(*, nullable: bool = False, name: str | None = None) -> Any:
    server = None if nullable else text("'{}'::jsonb")
    column = (
        Column(name, JSONB, nullable=nullable, server_default=server)
        if name
        else Column(JSONB, nullable=nullable, server_default=server)
    )
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=dict, sa_column=column)


def text_array_col(*, nullable: bool = False) -> Any:
    return Field(
        default_factory=list,
        sa_column=Column(ARRAY(Text), nullable=nullable, server_default=text("'{}'::text[]")),
    )


def bytes_col() -> Any:
    return Field(sa_column=Column(LargeBinary, nullable=False))


def identity_pk() -> Any:
    return Field(default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True))


def fk(target: str, *, nullable: bool = False, **kw: Any) -> Any:
    return Field(
        default=None,
        sa_column=Column(Text, ForeignKey(target, ondelete="RESTRICT"), nullable=nullable, **kw),
    )


def listing_index(table: str, by: str | None = None, *, moment: str = "created_at") -> Index:
    """The `(moment DESC, id DESC)` index every listed resource pages through; with `by`, the
    one a filter on that column pages through (`ix_orders_status_listing`, migration 0003)."""
    name = f"ix_{table}_{by.removesuffix('_id')}_listing" if by else f"ix_{table}_listing"
    return Index(name, *([by] if by else []), text(f"{moment} DESC"), text("id DESC"))


__all__ = [
    "bigint_col",
    "bool_col",
    "bytes_col",
    "created_at_col",
    "datetime",
    "enum_check",
    "fk",
    "id_check",
    "id_column",
    "identity_pk",
    "int_col",
    "jsonb_col",
    "listing_index",
    "text_array_col",
    "text_col",
    "time_col",
]
