"""The documents in docs/ and the README: the vocabulary table is the code's own, and links stay inside.

docs/observations.md carries the published vocabulary's prose and definitions around a table generated
from `services/schemas/vocabulary.py`; these tests fail when the two part ways.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.schemas.vocabulary import VOCABULARY, Variable, canonical_unit, suffix_unit
from services.schemas.vocabulary_doc import (
    END,
    START,
    generated_part,
    main,
    markdown_table,
    vocabulary_rows,
    with_table,
)

ROOT = Path(__file__).resolve().parents[2]
OBSERVATIONS = ROOT / "docs" / "observations.md"
REGENERATE = "run `.venv/bin/python -m services.schemas.vocabulary_doc --write` and commit the document"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
TABLE_NAME = re.compile(r"^\| ([a-z0-9_]+) \|", re.MULTILINE)


def test_the_vocabulary_table_in_docs_is_the_one_the_code_generates() -> None:
    written = generated_part(OBSERVATIONS.read_text(encoding="utf-8"))
    assert written == markdown_table(), f"docs/observations.md's table is out of date: {REGENERATE}"


def test_the_generated_table_has_one_row_per_variable_and_the_screening_id() -> None:
    names = [row.name for row in vocabulary_rows()]
    assert names == ["screening_id", *(variable.name for variable in VOCABULARY)]
    assert len(markdown_table().splitlines()) == len(names) + 2


def test_every_variable_the_published_definitions_name_is_in_the_code_vocabulary() -> None:
    # Published names are never renamed nor removed; the code may add names the publication lacks.
    published = OBSERVATIONS.read_text(encoding="utf-8").split(END, 1)[1]
    names = set(TABLE_NAME.findall(published)) - {"name"}
    assert len(names) > 100, "the published definitions' tables were not found after the generated one"
    missing = names - {row.name for row in vocabulary_rows()}
    assert not missing, f"published variables the code lacks: {sorted(missing)}"


@pytest.mark.parametrize("variable", [pytest.param(v, id=v.name) for v in VOCABULARY if v.units])
def test_a_lab_values_conversions_keep_the_unit_its_name_announces(variable: Variable) -> None:
    assert suffix_unit(variable.name), f"{variable.name} names no unit"
    assert canonical_unit(variable) == suffix_unit(variable.name)
    assert variable.units[canonical_unit(variable)] == (1.0, 0.0)


def test_only_numbers_have_a_unit_and_only_enumerations_have_values() -> None:
    for row in vocabulary_rows():
        assert not row.unit or row.type in ("int", "float"), row.name
        assert bool(row.values) == (row.type == "enum"), row.name


def test_writing_replaces_the_table_between_the_markers_and_nothing_else(tmp_path: Path) -> None:
    document = tmp_path / "observations.md"
    document.write_text(f"# prose\n\n{START}\n| stale |\n{END}\n\nmore prose\n", encoding="utf-8")
    assert main(["--write", str(document)]) == 0
    expected = f"# prose\n\n{START}\n{markdown_table()}{END}\n\nmore prose\n"
    assert document.read_text(encoding="utf-8") == expected


def test_printing_gives_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out == markdown_table()


def test_a_document_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        with_table("# no markers here\n", markdown_table())


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_documents_link_only_to_files_inside_the_repository(document: Path) -> None:
    # A fresh clone has no ../shared: the contract and the vocabulary are in docs/.
    text = document.read_text(encoding="utf-8")
    assert "../shared" not in text
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (document.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"{document.name} links to {target}"
