"""API coverage of a conformance run, as Specmatic reports it: for every operation of the
contract and every response it declares, whether the run got that answer, how many times, and
which checks judged it.

A response is *covered* when some request of the run was answered with it (``default`` and
``4XX``-style keys cover the statuses they stand for). The percentage is covered declared
responses over all declared responses; ``--min-coverage`` fails a run under it. Answers with a
status the contract does not declare are listed apart (they are violations already).
"""

from __future__ import annotations

import dataclasses
import typing as t

from .model import Result, Tally

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def declared_key(responses: t.Mapping[str, t.Any], status: int) -> str | None:
    """The key of ``responses`` that covers ``status``: the exact code, its ``NXX`` range, or
    ``default`` (``None``: the contract does not declare it)."""
    keys = {str(k).upper(): str(k) for k in responses}
    for candidate in (str(status), f"{str(status)[0]}XX", "DEFAULT"):
        if candidate in keys:
            return keys[candidate]
    return None


@dataclasses.dataclass
class Cell:
    """One declared response of one operation."""

    operation: str
    status: str
    answered: int = 0
    checks: dict[str, Tally] = dataclasses.field(default_factory=dict)

    @property
    def covered(self) -> bool:
        return self.answered > 0


@dataclasses.dataclass
class Coverage:
    cells: list[Cell]
    undeclared: dict[tuple[str, str], int]
    """(operation, status) answered but not declared -> how many times."""
    operations: list[str]
    check_names: list[str]

    @property
    def covered(self) -> int:
        return sum(cell.covered for cell in self.cells)

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / len(self.cells) if self.cells else 100.0

    def operations_exercised(self) -> int:
        return len({cell.operation for cell in self.cells if cell.covered})

    def below_minimum(self, minimum: float | None) -> bool:
        return minimum is not None and self.percent < minimum

    def missing(self) -> list[Cell]:
        return [cell for cell in self.cells if not cell.covered]

    def by_operation(self) -> dict[str, list[Cell]]:
        rows: dict[str, list[Cell]] = {operation: [] for operation in self.operations}
        for cell in self.cells:
            rows[cell.operation].append(cell)
        return rows

    def to_json(self) -> dict[str, t.Any]:
        return {
            "percent": round(self.percent, 1),
            "declaredResponses": len(self.cells),
            "coveredResponses": self.covered,
            "operations": len(self.operations),
            "operationsExercised": self.operations_exercised(),
            "responses": [
                {
                    "operation": cell.operation,
                    "status": cell.status,
                    "answered": cell.answered,
                    "covered": cell.covered,
                    "checks": {
                        name: {"passed": tally.passed, "failed": tally.failed}
                        for name, tally in sorted(cell.checks.items())
                    },
                }
                for cell in self.cells
            ],
            "undeclared": [
                {"operation": operation, "status": status, "answered": count}
                for (operation, status), count in sorted(self.undeclared.items())
            ],
        }


def compute(spec: dict, result: Result) -> Coverage:
    """The coverage of ``result`` over every operation and declared response of ``spec``."""
    cells: dict[tuple[str, str], Cell] = {}
    responses_of: dict[str, dict] = {}
    operations = []
    for path, item in (spec.get("paths") or {}).items():
        for method in METHODS:
            operation = item.get(method) if isinstance(item, dict) else None
            if not isinstance(operation, dict):
                continue
            label = f"{method.upper()} {path}"
            operations.append(label)
            responses = operation.get("responses") or {}
            responses_of[label] = responses
            for status in responses:
                cells[(label, str(status))] = Cell(label, str(status))
    undeclared: dict[tuple[str, str], int] = {}
    for (label, status), checks in result.exercised.items():
        responses = responses_of.get(label)
        key = declared_key(responses, int(status)) if responses is not None and status.isdigit() else None
        answered = max((tally.passed + tally.failed for tally in checks.values()), default=0)
        if key is None:
            undeclared[(label, status)] = undeclared.get((label, status), 0) + answered
            continue
        cell = cells[(label, key)]
        cell.answered += answered
        for name, tally in checks.items():
            merged = cell.checks.setdefault(name, Tally())
            merged.passed += tally.passed
            merged.failed += tally.failed
    names = sorted({name for cell in cells.values() for name in cell.checks})
    return Coverage(list(cells.values()), undeclared, operations, names)
