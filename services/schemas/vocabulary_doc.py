"""The vocabulary as the markdown table of docs/observations.md, generated so that the document cannot drift.

`python -m services.schemas.vocabulary_doc` prints the table; `--write [PATH]` puts it into
docs/observations.md (or PATH) between the vocabulary markers, leaving the published prose around it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.schemas.observations import ApplicantBase
from services.schemas.vocabulary import VOCABULARY, Variable, canonical_unit

START = "<!-- vocabulary:start -->"
END = "<!-- vocabulary:end -->"
DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "observations.md"
COLUMNS = ("name", "type", "unit", "units accepted", "minimum", "maximum", "values", "description")


@dataclass(frozen=True)
class VocabularyRow:
    """One variable as the vocabulary publishes it (the fields of v1.2's `GET /api/v1/vocabulary`)."""

    name: str
    type: str
    unit: str = ""
    units_accepted: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    values: tuple[str, ...] = ()
    description: str = ""


def _row(variable: Variable) -> VocabularyRow:
    return VocabularyRow(
        name=variable.name,
        type=variable.kind,
        unit=canonical_unit(variable) if variable.kind in ("int", "float") else "",
        units_accepted=tuple(variable.units),
        minimum=variable.low,
        maximum=variable.high,
        values=variable.values,
        description=variable.doc,
    )


def _screening_id_row() -> VocabularyRow:
    # Not a clinical observation, so not in VOCABULARY: its rules live on the applicant model's field.
    model: dict[str, Any] = ApplicantBase.model_json_schema()
    schema: dict[str, Any] = model["properties"]["screening_id"]
    required = "required; " if "screening_id" in model.get("required", ()) else ""
    limits = f"{schema['minLength']}-{schema['maxLength']} characters matching `{schema['pattern']}`"
    description = f"{required}{limits}. {schema['description']}"
    return VocabularyRow(name="screening_id", type=schema["type"], description=description)


def vocabulary_rows() -> list[VocabularyRow]:
    """Every variable an applicant may carry, in the vocabulary's order, the screening id first."""
    return [_screening_id_row(), *(_row(variable) for variable in VOCABULARY)]


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _code(items: tuple[str, ...], separator: str) -> str:
    return separator.join(f"`{item}`" for item in items)


def _cells(row: VocabularyRow) -> tuple[str, ...]:
    return (
        row.name,
        row.type,
        row.unit,
        _code(row.units_accepted, ", "),
        _number(row.minimum),
        _number(row.maximum),
        _code(row.values, " \\| "),
        row.description.replace("|", "\\|"),
    )


def markdown_table() -> str:
    """The vocabulary as one markdown table, one row per variable."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in vocabulary_rows()]
    return "\n".join(lines) + "\n"


def generated_part(document: str) -> str:
    """What stands between the vocabulary markers of `document`; ValueError when they are missing."""
    start, end = document.find(START), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the document has no {START} ... {END} markers")
    return document[start + len(START) : end].strip("\n") + "\n"


def with_table(document: str, table: str) -> str:
    """`document` with `table` between its vocabulary markers, everything else unchanged."""
    generated_part(document)  # refuses a document without markers
    head, rest = document.split(START, 1)
    return f"{head}{START}\n{table}{END}{rest.split(END, 1)[1]}"


def main(argv: list[str] | None = None) -> int:
    """Print the table, or write it into the document with --write."""
    parser = argparse.ArgumentParser(prog="python -m services.schemas.vocabulary_doc", description=__doc__)
    parser.add_argument("--write", nargs="?", const=DOCUMENT, type=Path, metavar="PATH")
    arguments = parser.parse_args(argv)
    table = markdown_table()
    if arguments.write is None:
        sys.stdout.write(table)
        return 0
    path: Path = arguments.write
    path.write_text(with_table(path.read_text(encoding="utf-8"), table), encoding="utf-8")
    print(f"wrote the vocabulary table into {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
