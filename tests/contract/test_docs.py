"""Docs generated from code are current, and hand-written specs name every reason and column."""

from __future__ import annotations

import pytest

from lambda_contract.events import RULES, Reason
from lambda_contract.tables import TABLES
from lambda_tools.docs import CONFIGURATION_MD, configuration_markdown

pytestmark = pytest.mark.unit

DOCS = CONFIGURATION_MD.parent


def test_configuration_doc_is_generated_from_the_settings() -> None:
    assert CONFIGURATION_MD.read_text() == configuration_markdown(), "run: python -m lambda_tools.docs"


def test_contract_doc_names_every_reason() -> None:
    text = (DOCS / "contract.md").read_text()
    for reason in Reason:
        field = reason.value.removeprefix("missing_").removeprefix("invalid_")
        assert reason.value in text or field in {r.name for r in RULES}, reason


def test_delta_spec_names_every_column() -> None:
    text = (DOCS / "specs" / "delta.md").read_text()
    for table in TABLES:
        assert f"`{table.name}`" in text
        for column in table.columns:
            assert f"`{column.name}`" in text, (table.name, column.name)
