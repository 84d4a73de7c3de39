"""Task sources beyond our JSONL: Hugging Face datasets (a hub name or local parquet / json / csv files).

What it is for: turning the rows of a `datasets.load_dataset` split into `Task`s, with a field mapping and the
answer extraction of the common shapes:
- `gsm8k`: `question` / `answer` ending in `#### 42` (the reference is `42`, thousands separators dropped);
- `math`: `problem` / `solution` with `\\boxed{...}` (the reference is the last box's content);
- `humaneval`: `prompt` / `test` / `entry_point` (the `assert`s of `check(candidate)`, with `candidate` renamed to
  the entry point: the code verifier runs single assert statements);
- `mbpp`: `text` (or `prompt`) / `test_list` assert strings (a non-empty `test_setup_code` is refused);
- `plain`: `prompt` / `answer` (or whatever `prompt=` / `answer=` / `id=` map to).
The shape is found from the columns when not given. Ids are the mapped id column, else `{source}-{row}`.

A source is a string: `hf:NAME_OR_FILE?key=value&...` (keys: `name`, `split` (default train), `format`, `prompt`,
`answer`, `tests`, `id`, `kind`, `limit`), or a path ending in .parquet / .csv / .json (the shape auto-detected).
What it does not do: read our `tasks.jsonl` (see `selfplay.tasks.task`), download anything by itself beyond what
`datasets.load_dataset` does for a hub name (tests use local files only).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError

from selfplay.core.errors import UserError
from selfplay.tasks.task import Task

PREFIX = "hf:"
FILE_SUFFIXES = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json"}
FORMATS = ("gsm8k", "math", "humaneval", "mbpp", "plain")
KEYS = {"name", "split", "format", "prompt", "answer", "tests", "id", "kind", "limit"}


def is_source(spec: str) -> bool:
    """True for a spec this module reads (an `hf:` spec, or a parquet / csv / json file)."""
    return spec.startswith(PREFIX) or Path(spec).suffix in (".parquet", ".csv", ".json")


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    body = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    target, _, query = body.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - KEYS)
    if unknown:
        raise UserError(f"task source {spec!r}: unknown option(s) {', '.join(unknown)}; use {', '.join(sorted(KEYS))}")
    if options.get("format") not in (None, *FORMATS):
        raise UserError(f"task source {spec!r}: format={options['format']!r}; choose one of {', '.join(FORMATS)}")
    if not target:
        raise UserError(f"task source {spec!r}: name a dataset (hf:openai/gsm8k?name=main) or a file")
    return target, options


def load_source(spec: str, base: str | Path | None = None) -> list[Task]:
    """The tasks of a dataset source; every problem is a `UserError` naming the source (and the row)."""
    target, options = parse_spec(spec)
    rows = _rows(target, options, spec, base)
    fmt = options.get("format") or detect_format(rows[0].keys() if rows else (), options)
    if options.get("limit"):
        rows = rows[:int(options["limit"])]
    stem = Path(target).stem if Path(target).suffix in FILE_SUFFIXES else target.replace("/", "-")
    tasks, seen = [], set()
    for index, row in enumerate(rows):
        where = f"task source {spec!r} row {index}"
        task = to_task(row, fmt, options, default_id=f"{stem}-{index}", where=where)
        if task.id in seen:
            raise UserError(f"{where}: duplicate task id {task.id!r}")
        seen.add(task.id)
        tasks.append(task)
    if not tasks:
        raise UserError(f"task source {spec!r}: no rows")
    return tasks


def _rows(target: str, options: dict[str, str], spec: str, base: str | Path | None) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as exc:
        raise UserError(f"task source {spec!r} needs the `datasets` package: pip install 'selfplay[train]'") from exc
    suffix = Path(target).suffix
    split = options.get("split", "train")
    try:
        if suffix in FILE_SUFFIXES:
            path = Path(target) if base is None or Path(target).is_absolute() else Path(base) / target
            if not path.is_file():
                raise UserError(f"task source {spec!r}: file {path} does not exist")
            ds = datasets.load_dataset(FILE_SUFFIXES[suffix], data_files={split: str(path)}, split=split)
        else:
            ds = datasets.load_dataset(target, options.get("name"), split=split)
    except UserError:
        raise
    except Exception as exc:  # datasets raises many types for a bad name, split or file
        raise UserError(f"task source {spec!r}: datasets.load_dataset failed: {exc}") from exc
    return [dict(row) for row in ds]


def detect_format(columns, options: dict[str, str]) -> str:
    cols = set(columns)
    if {"question", "answer"} <= cols:
        return "gsm8k"
    if {"problem", "solution"} <= cols:
        return "math"
    if {"prompt", "test", "entry_point"} <= cols:
        return "humaneval"
    if "test_list" in cols:
        return "mbpp"
    return "plain"


def to_task(row: dict[str, Any], fmt: str, options: dict[str, str], *, default_id: str, where: str) -> Task:
    def field(key: str, default: str) -> Any:
        name = options.get(key, default)
        if name not in row:
            raise UserError(f"{where}: no column {name!r} (columns: {', '.join(sorted(row))}); "
                            f"map it with {key}=COLUMN in the source spec")
        return row[name]

    data: dict[str, Any] = {}
    if fmt == "gsm8k":
        data = {"prompt": field("prompt", "question"), "answer": gsm8k_answer(str(field("answer", "answer"))),
                "kind": "math"}
    elif fmt == "math":
        solution = str(field("answer", "solution"))
        answer = boxed_answer(solution)
        if answer is None:
            raise UserError(f"{where}: the solution has no \\boxed{{...}} answer")
        data = {"prompt": field("prompt", "problem"), "answer": answer, "kind": "math",
                "metadata": {k: row[k] for k in ("level", "type", "subject") if k in row}}
    elif fmt == "humaneval":
        data = {"prompt": field("prompt", "prompt"), "tests": humaneval_asserts(str(field("tests", "test")),
                str(row.get("entry_point") or ""), where), "kind": "code"}
    elif fmt == "mbpp":
        tests = list(field("tests", "test_list"))
        if (row.get("test_setup_code") or "").strip():  # our sandbox's tests are single assert statements
            raise UserError(f"{where}: test_setup_code is not supported (tests must be single assert statements)")
        prompt = row.get(options.get("prompt", "text")) or row.get("prompt")
        if not prompt:
            raise UserError(f"{where}: no `text` or `prompt` column; map it with prompt=COLUMN")
        data = {"prompt": f"{prompt}\nYour code should pass these tests:\n" + "\n".join(tests),
                "tests": tests, "kind": "code"}
    else:
        data = {"prompt": field("prompt", "prompt")}
        if options.get("answer", "answer") in row:
            data["answer"] = field("answer", "answer")
        if options.get("tests", "tests") in row:
            data["tests"] = list(field("tests", "tests"))
    if options.get("kind"):
        data["kind"] = options["kind"]
    id_col = options.get("id") or next((c for c in ("id", "task_id", "unique_id") if c in row), None)
    data["id"] = str(row[id_col]) if id_col and row.get(id_col) is not None else default_id
    try:
        return Task.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"{where}: {'.'.join(map(str, err['loc'])) or 'task'}: {err['msg']}") from exc


def gsm8k_answer(text: str) -> str:
    """GSM8K's reference: what follows the last `####`, without thousands separators."""
    if "####" not in text:
        raise UserError(f"GSM8K answer has no '#### N' line: {text[-80:]!r}")
    return text.rsplit("####", 1)[1].strip().replace(",", "")


def boxed_answer(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`), braces balanced; None when there is none."""
    starts = [m.end() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    if not starts:
        return None
    start, depth = starts[-1], 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i].strip()
    return None


def humaneval_asserts(test: str, entry_point: str, where: str) -> list[str]:
    """The assert statements of HumanEval's `check(candidate)`, calling `entry_point` instead of `candidate`."""
    import ast

    try:
        tree = ast.parse(test)
    except SyntaxError as exc:
        raise UserError(f"{where}: the test is not Python ({exc.msg})") from exc

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.AST:
            return ast.copy_location(ast.Name(id=entry_point, ctx=node.ctx), node) if node.id == "candidate" else node

    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    asserts = [n for fn in checks for n in ast.walk(fn) if isinstance(n, ast.Assert)]
    if not entry_point or not asserts:
        raise UserError(f"{where}: expected an entry_point and a `def check(candidate)` with assert statements")
    return [ast.unparse(Rename().visit(a)) for a in asserts]
