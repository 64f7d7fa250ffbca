"""The configuration reference is generated from `settings.Settings`: README's table and
docs/configuration.md must match it (regenerate with `python -m api.settings_reference`)."""

from __future__ import annotations

from api.settings_reference import BEGIN, END, ROOT, document, readme_with_table, table
from settings import Settings

FIX = "run `.venv/bin/python -m api.settings_reference` to regenerate"


def test_readme_table_matches_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    assert BEGIN in readme and END in readme
    assert readme_with_table(readme) == readme, FIX


def test_configuration_doc_matches_settings() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == document(), FIX


def test_every_setting_is_listed_once_with_its_secrecy() -> None:
    rows = table().splitlines()[2:]
    names = [row.split("`")[1] for row in rows]
    assert names == [name.upper() for name in Settings.model_fields]
    secrets = {row.split("`")[1] for row in rows if row.endswith("| yes |")}
    assert {"OFFERHUB_MASTER_KEY", "DATABASE_URL", "AIRTM_API_SECRET", "WALLET_ENCRYPTION_KEY"} <= secrets
    assert "API_PORT" not in secrets
