#!/usr/bin/env python3
"""Public contracts, unmodified, served by timbrix-sandbox and by Stoplight Prism in one run.

    python3 bench/corpus.py                              # every spec of ../shared/corpus (MANIFEST.tsv)
    python3 bench/corpus.py --only museum --only asana   # some of them
    python3 bench/corpus.py --sandbox-root /work/main    # serve with another checkout (a "before" column)
    python3 bench/corpus.py --no-conformance --no-prism  # just startup and the round trip

For each spec and each tool this prints:

* **starts**: ``y``, or ``n`` and the first line of the error (a traceback's last line); a server
  that gives no HTTP answer within ``--start-timeout`` seconds did not start;
* **load**: ``load_contract`` alone, cold, in a fresh process of the served checkout: wall and
  CPU seconds (CPU time is the steadier figure on a shared machine) and peak RSS;
* **first answer**: seconds from launching the process to its first HTTP answer to ``GET /``
  (any status: the server is up and routing), and the CPU seconds the server had used by then
  (``startup_cpu_s`` in the JSON: steadier than wall time on a shared machine);
* **RSS**: the peak resident memory of the server process and its children (``VmHWM``, MiB),
  read after the round trip;
* **CRUD**: one round trip on a resource picked from the spec (a collection with POST and GET,
  an item path with GET, PUT or PATCH, and DELETE; fewest other path parameters first):
  create -> read equals the created record (every field both answers show) -> update one
  field: persisted, and every field it did not send kept -> list contains the record (asking
  for the widest page) -> delete -> read is 404 (or the 4xx the contract declares, when it
  declares no 404). ``pass``, or the step that failed and why. Bodies are generated from the
  request schemas (the spec's examples where those validate, with fresh ids); parent path
  parameters get sample values. Credentials come from ``GET /__sandbox/credentials`` when the
  sandbox lists them, else ``--credential`` or a placeholder per declared scheme (Prism only
  checks they are present);
* **conformance** (sandbox only): ``timbrix-sandbox conformance`` against the sandbox serving the
  spec, as cases and violations (``--conformance-max-examples`` per operation and phase), the
  violations split into the implementation's and the contract's gaps (``conformance/causes.py``:
  ``implementation`` and ``contract_gaps`` in the JSON, with ``gaps_by_rule`` and
  ``implementation_by_check``), and ``resources_tested``: how many resources the behaviour
  scenarios created and read back.

The sandbox runs from ``--sandbox-root`` (default: this checkout) as ``python -m timbrix_sandbox
serve --contract FILE --in-memory``; Prism is ``bench/.prism`` (installed on first use, as
``bench/run.py`` does) or ``--prism``. The planning of the round trip reads the spec with this
checkout's loader, so both tools get the same requests. Results go to
``bench/results/corpus-<date>[-label].json``. Nothing here asserts a time, and the machines here
are small and shared: compare within a run.
"""

from __future__ import annotations

import argparse
import base64
import collections
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jsonschema_rs  # noqa: E402

from timbrix_sandbox.contract.loading import load_contract  # noqa: E402
from timbrix_sandbox.contract.refs import resolve_refs  # noqa: E402
from timbrix_sandbox.testing import free_port, stop_process  # noqa: E402

PRISM_VERSION = "5.14.2"  # the version bench/run.py installs
PRISM_DIR = ROOT / "bench" / ".prism"
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
METHODS = ("get", "put", "post", "delete", "patch")
TIMEOUT = 15.0


# -- servers ------------------------------------------------------------------------------------
@dataclass
class Started:
    process: subprocess.Popen | None
    base: str
    first_answer_s: float | None = None
    startup_cpu_s: float | None = None
    error: str | None = None
    log: Path | None = None


def _first_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return "exited without a message"
    if any(line.startswith("Traceback") for line in lines):
        return lines[-1][:200]
    errors = [line for line in lines if re.search(r"error|invalid|cannot|refus|fail", line, re.I)]
    return (errors[0] if errors else lines[0])[:200]


def _launch(command: list[str], cwd: Path, base: str, start_timeout: float, env: dict | None = None) -> Started:
    log = Path(tempfile.mkstemp(prefix="corpus-", suffix=".log")[1])
    started = time.perf_counter()
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT, env=env)
    deadline = started + start_timeout
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            return Started(None, base, error=_first_error_line(log.read_text(errors="replace")), log=log)
        try:
            with urllib.request.urlopen(base.rstrip("/") + "/", timeout=1):
                pass
        except urllib.error.HTTPError:
            pass  # any status is an answer
        except OSError:
            time.sleep(0.05)
            continue
        elapsed = round(time.perf_counter() - started, 2)
        return Started(process, base, elapsed, startup_cpu_s=cpu_seconds(process.pid), log=log)
    stop_process(process)
    return Started(None, base, error=f"no HTTP answer within {start_timeout:.0f} s", log=log)


def start_sandbox(spec: Path, sandbox_root: Path, start_timeout: float) -> Started:
    port = free_port()
    command = [sys.executable, "-m", "timbrix_sandbox", "serve", "--contract", str(spec), "--in-memory"]
    command += ["--port", str(port), "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(sandbox_root)}
    return _launch(command, sandbox_root, f"http://127.0.0.1:{port}", start_timeout, env)


def prism_binary(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    binary = PRISM_DIR / "node_modules" / ".bin" / "prism"
    if not binary.exists() and shutil.which("npm"):
        subprocess.run(
            ["npm", "install", "--prefix", str(PRISM_DIR), "--no-audit", "--no-fund", "--loglevel=error"]
            + [f"@stoplight/prism-cli@{PRISM_VERSION}"],
            check=True,
            capture_output=True,
        )
    return binary if binary.exists() else None


def start_prism(binary: Path, spec: Path, start_timeout: float) -> Started:
    port = free_port()
    command = [str(binary), "mock", str(spec), "-p", str(port), "-h", "127.0.0.1"]
    return _launch(command, ROOT, f"http://127.0.0.1:{port}", start_timeout)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        if current in found:
            continue
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds used so far by ``pid`` and its descendants: steadier than wall
    time on a shared machine."""
    ticks = 0
    for current in _tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return round(ticks / os.sysconf("SC_CLK_TCK"), 2) if ticks else None


def peak_rss_mib(pid: int) -> float | None:
    """Peak resident memory (VmHWM) of ``pid`` and its descendants, in MiB."""
    total, pending, seen = 0, [pid], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, AttributeError):
            continue
    return round(total / 1024, 1) if total else None


# -- HTTP ---------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    body: object
    text: str


FORM = "application/x-www-form-urlencoded"


def call(method: str, url: str, body: object = None, headers: dict | None = None, media: str = "") -> Reply:
    merged = {"Accept": "application/json", **(headers or {})}
    data = None
    if body is not None and media == FORM and isinstance(body, dict):
        form = {
            k: json.dumps(v) if isinstance(v, (dict, list)) else str(v).lower() if isinstance(v, bool) else v
            for k, v in body.items()
        }
        data, merged["Content-Type"] = urllib.parse.urlencode(form).encode(), FORM
    elif body is not None:
        data, merged["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=merged)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except OSError as error:
        return Reply(0, None, f"no answer: {error}")
    text = raw.decode(errors="replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    return Reply(status, parsed, text)


# -- planning a round trip from the spec ---------------------------------------------------------
@dataclass
class Plan:
    collection: str
    item: str
    id_param: str
    operations: dict[str, tuple[str, dict]]  # action -> (METHOD, resolved operation)
    path_values: dict[str, object] = field(default_factory=dict)
    create_body: object = None
    update_body: dict = field(default_factory=dict)
    """Sent with the changed field (a PUT's required fields; nothing else for a PATCH)."""
    change_path: tuple | None = None
    """Where the field the update changes sits in the body (``("article", "title")``)."""


def _param_name(segment: str) -> str | None:
    match = re.fullmatch(r"\{([^}]+)\}", segment)
    return match[1] if match else None


def plan_round_trip(spec: dict) -> Plan | None:
    """The CRUD resource to round-trip: most of create, list, read, update and delete first, then
    fewest parent path parameters, then the shortest path; among the best few, the first whose
    update has a plain field to change."""
    paths = spec.get("paths", {})
    candidates = []
    for item_path, item in paths.items():
        segments = item_path.rstrip("/").split("/")
        last = re.fullmatch(r"\{([^}]+)\}(\.\w+)?", segments[-1])  # {id}, or Discourse's {id}.json
        if last is None:
            continue
        id_param, prefix = last[1], "/".join(segments[:-1]) or "/"
        collection = next((c for c in (prefix + (last[2] or ""), prefix) if c in paths), None)
        if collection is None:
            continue
        listed = paths[collection]
        actions = {}
        if isinstance(listed.get("post"), dict):
            actions["create"] = ("POST", listed["post"])
        if isinstance(listed.get("get"), dict):
            actions["list"] = ("GET", listed["get"])
        if isinstance(item.get("get"), dict):
            actions["read"] = ("GET", item["get"])
        for method in ("patch", "put", "post"):  # Twilio updates with a POST to the item
            if isinstance(item.get(method), dict):
                actions["update"] = (method.upper(), item[method])
                break
        if isinstance(item.get("delete"), dict):
            actions["delete"] = ("DELETE", item["delete"])
        if "create" not in actions or "read" not in actions:
            continue
        parents = sum(1 for s in collection.split("/") if _param_name(s))
        candidates.append((-len(actions), parents, len(item_path), item_path, collection, id_param, actions))
    plans = [_plan(spec, *candidate[3:]) for candidate in sorted(candidates)[:12]]
    return next((plan for plan in plans if plan.change_path or "update" not in plan.operations), None) or (
        plans[0] if plans else None
    )


def _plan(spec: dict, item_path: str, collection: str, id_param: str, actions: dict) -> Plan:
    paths = spec["paths"]
    operations = {}
    for action, (method, raw) in actions.items():
        path = collection if action in ("create", "list") else item_path
        shared = paths[path].get("parameters", [])
        operation = resolve_refs(raw, spec)
        operation["parameters"] = resolve_refs(shared, spec) + operation.get("parameters", [])
        operations[action] = (method, operation)
    plan = Plan(collection, item_path, id_param, operations)
    for _method, operation in operations.values():
        for parameter in operation["parameters"]:
            if parameter.get("in") == "path" and parameter.get("name") != id_param:
                plan.path_values.setdefault(parameter["name"], sample(parameter.get("schema") or {}, "bench"))
    plan.create_body = _fresh_ids(request_body(operations["create"][1]), id_param)
    if "update" in operations:
        method, update = operations["update"]
        schema, _ = _json_schema((update.get("requestBody") or {}).get("content"))
        change = request_body(update, optional=method == "PUT")
        plan.update_body = change if isinstance(change, dict) else {}
        plan.change_path = _changeable(schema, plan.update_body or plan.create_body, {id_param})
    return plan


def _merge_all_of(schema: dict) -> dict:
    merged = {key: value for key, value in schema.items() if key != "allOf"}
    for branch in schema.get("allOf", []):
        branch = _merge_all_of(branch) if "allOf" in branch else branch
        for key, value in branch.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = sorted({*merged.get("required", []), *value})
            else:
                merged.setdefault(key, value)
    return merged


def sample(schema: dict, hint: str = "bench", depth: int = 0, optional: bool = True) -> object:
    """A value for ``schema``: its example, default, const or first enum value when it has one,
    else one made from its type and bounds (objects: required properties, plus optional plain
    ones at the top level, so that an update has unsent fields to keep)."""
    if not isinstance(schema, dict) or depth > 6:
        return None
    if "allOf" in schema:
        schema = _merge_all_of(schema)
    for key in ("const", "example", "default"):
        if key in schema and schema[key] is not None:
            return schema[key]
    if isinstance(schema.get("examples"), list) and schema["examples"]:
        return schema["examples"][0]
    if isinstance(schema.get("enum"), list):
        return next((value for value in schema["enum"] if value is not None), None)
    for key in ("oneOf", "anyOf"):
        branches = [b for b in schema.get(key, []) if isinstance(b, dict) and b.get("type") != "null"]
        if branches:
            return sample({**{k: v for k, v in schema.items() if k != key}, **branches[0]}, hint, depth, optional)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or (kind is None and "properties" in schema):
        required = set(schema.get("required", []))
        properties = {n: p for n, p in (schema.get("properties") or {}).items() if isinstance(p, dict)}
        wrapper = len(properties) == 1  # {data: {...}}, {article: {...}}: its content is the record
        out = {}
        for name, sub in properties.items():
            if sub.get("readOnly"):
                continue
            plain = sub.get("type") in ("string", "integer", "number", "boolean") and "pattern" not in sub
            if name in required or (optional and (plain or wrapper)):
                out[name] = sample(sub, name, depth + 1, optional=optional and wrapper)
        return out
    if kind == "array":
        count = max(1, schema.get("minItems", 0))
        return [sample(schema.get("items") or {}, hint, depth + 1, optional=False) for _ in range(count)]
    if kind == "integer":
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in schema else 1)
        return int(min(max(low, 1), schema.get("maximum", 10**9)))
    if kind == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 0.5 if "exclusiveMinimum" in schema else 1.5)
        return float(min(max(low, 1.5), schema.get("maximum", 10**9)))
    if kind == "boolean":
        return True
    formats = {
        "date-time": "2024-01-02T03:04:05Z",
        "date": "2024-01-02",
        "time": "03:04:05Z",
        "email": "bench@example.com",
        "uuid": str(uuid.uuid4()),
        "uri": "https://example.com/bench",
        "url": "https://example.com/bench",
        "hostname": "example.com",
        "ipv4": "192.0.2.1",
        "ipv6": "2001:db8::1",
    }
    if schema.get("format") in formats:
        return formats[schema["format"]]
    text = f"{re.sub(r'[^A-Za-z0-9]', '', hint)[:12] or 'bench'}{uuid.uuid4().hex[:6]}"
    low, high = schema.get("minLength", 1), schema.get("maxLength", 64)
    return (text * (1 + low // max(1, len(text))))[: max(low, min(high, len(text)))]


def _fresh_ids(body: object, id_param: str) -> object:
    """A create body taken from the spec's example keeps the example's id, which a sandbox that
    seeds its examples already holds: give the id fields fresh values of the same kind."""
    record = body
    if isinstance(body, dict) and len(body) == 1 and isinstance(next(iter(body.values())), dict):
        record = next(iter(body.values()))  # {data: {...}}
    if not isinstance(record, dict):
        return body
    for key, value in list(record.items()):
        if key.lower() not in {id_param.lower(), "id", id_param.split("_")[-1].lower()}:
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            record[key] = int(uuid.uuid4().int % 10**9)
        elif isinstance(value, str):
            looks_like_uuid = re.fullmatch(r"[0-9a-fA-F-]{36}", value) is not None
            record[key] = str(uuid.uuid4()) if looks_like_uuid else f"bench{uuid.uuid4().hex[:10]}"
    return body


def _json_schema(content: dict | None) -> tuple[dict | None, object]:
    """(schema, example) of the JSON (else form) media type of a request body or response."""
    content = content or {}
    for media, entry in sorted(content.items(), key=lambda item: "json" not in item[0]):
        if "json" in media or media == FORM:
            example = entry.get("example")
            if example is None and isinstance(entry.get("examples"), dict) and entry["examples"]:
                example = next(iter(entry["examples"].values())).get("value")
            return entry.get("schema"), example
    return None, None


def body_media(operation: dict) -> str:
    content = (operation.get("requestBody") or {}).get("content") or {}
    return next((m for m in content if "json" in m), FORM if FORM in content else "application/json")


def request_body(operation: dict, optional: bool = True) -> object:
    """A body for the operation; with ``optional``, also its plain optional fields (a create
    or a PUT), else only what is required (a partial update)."""
    schema, example = _json_schema((operation.get("requestBody") or {}).get("content"))
    if schema is None:
        return None
    generated = sample(schema, optional=optional)
    try:
        validator = jsonschema_rs.validator_for(schema)
    except Exception:  # noqa: BLE001 - a schema jsonschema-rs cannot compile: send what we made
        return generated
    if validator.is_valid(generated) or not optional or example is None or not validator.is_valid(example):
        return generated
    return example


def _changeable(schema: dict | None, body: object, excluded: set[str], path: tuple = ()) -> tuple | None:
    """The path to a plain string field of ``schema`` to change in an update (top level first,
    then inside a required wrapper like ``{article: {...}}``)."""
    if not isinstance(schema, dict):
        return None
    schema = _merge_all_of(schema) if "allOf" in schema else schema
    properties = schema.get("properties") or {}
    for name, sub in properties.items():
        if (
            isinstance(sub, dict)
            and "string" in (sub.get("type") if isinstance(sub.get("type"), list) else [sub.get("type")])
            and not sub.get("readOnly")
            and not {"enum", "format", "pattern", "const"} & set(sub)
            and not name.lower().endswith("id")
            and name not in excluded
        ):
            return (*path, name)
    for name, sub in properties.items():
        if isinstance(sub, dict) and isinstance(body, dict) and isinstance(body.get(name), dict):
            found = _changeable(sub, body[name], excluded, (*path, name))
            if found:
                return found
    return None


def _field(record: dict, name: str) -> str:
    """``name`` as the record spells it (Twilio takes ``FriendlyName`` and answers
    ``friendly_name``)."""
    folded = re.sub(r"[_\-]", "", name).lower()
    return next((key for key in record if re.sub(r"[_\-]", "", key).lower() == folded), name)


def _get_path(value: object, path: tuple) -> object:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _record(body: object, sent: object) -> dict | None:
    """The record inside a response body: the body, or the object it wraps (``{data: {...}}``,
    ``{article: {...}}``), whichever shares most keys with what was sent."""
    sent_keys = set(sent) if isinstance(sent, dict) else set()
    for value in sent.values() if isinstance(sent, dict) else ():
        if isinstance(value, dict) and len(sent) == 1:
            sent_keys |= set(value)
    candidates = [body] + [v for v in body.values() if isinstance(v, dict)] if isinstance(body, dict) else []
    if not candidates:
        return None
    return max(candidates, key=lambda c: (len(sent_keys & set(c)), c is body))


def _id_of(record: dict, id_param: str) -> object:
    names = [id_param, id_param.split("_")[-1], "id", "gid", "sid", "uuid", "key", "name"]
    lowered = {key.lower(): key for key in record}
    for name in names:
        key = lowered.get(name.lower())
        if key is not None and isinstance(record[key], (str, int)) and record[key] != "":
            return record[key]
    return None


def _contains(body: object, wanted: object) -> bool:
    if isinstance(body, dict):
        return any(_contains(value, wanted) for value in body.values())
    if isinstance(body, list):
        return any(_contains(value, wanted) for value in body)
    return body == wanted


_PAGE_SIZE = re.compile(r"limit|per_?page|page_?size|pageSize|count|max_?results|top", re.I)


class Caller:
    """Sends a plan's requests with credentials for each operation's security requirement."""

    def __init__(self, spec: dict, base: str, listed: list[dict] | None) -> None:
        self.spec, self.base = spec, base
        self.schemes = (spec.get("components") or {}).get("securitySchemes") or {}
        self.listed = {entry.get("scheme"): entry for entry in listed or [] if isinstance(entry, dict)}

    def _credential(self, name: str, headers: dict, query: dict) -> bool:
        scheme = self.schemes.get(name) or {}
        kind = scheme.get("type")
        listed = self.listed.get(name)
        value = listed.get("value") if listed else None
        if kind == "apiKey":
            value = value or "bench-key"
            where = {"header": headers, "query": query}.get(scheme.get("in"))
            if where is not None:
                where[scheme.get("name", "api_key")] = value
            elif scheme.get("in") == "cookie":
                headers["Cookie"] = f"{scheme.get('name')}={value}"
            return True
        if kind == "http" and str(scheme.get("scheme", "")).lower() == "basic":
            value = value or "bench:bench"
            encoded = base64.b64encode(value.encode()).decode() if ":" in value else value
            headers["Authorization"] = f"Basic {encoded}"
            return True
        if kind in ("http", "oauth2", "openIdConnect"):
            headers["Authorization"] = f"Bearer {value or 'bench-token'}"
            return True
        return False

    def send(self, method: str, path: str, operation: dict, values: dict, body: object = None) -> Reply:
        headers: dict[str, str] = {}
        query: dict[str, str] = {}
        for requirement in operation.get("security", self.spec.get("security", [])) or []:
            if all(name in self.schemes for name in requirement):
                for name in requirement:
                    self._credential(name, headers, query)
                break
        for parameter in operation.get("parameters", []):
            if parameter.get("required") and parameter.get("in") in ("query", "header"):
                value = sample(parameter.get("schema") or {}, parameter.get("name", "q"))
                target = query if parameter["in"] == "query" else headers
                target.setdefault(parameter["name"], str(value).lower() if isinstance(value, bool) else str(value))
            elif method == "GET" and parameter.get("in") == "query" and _PAGE_SIZE.fullmatch(parameter.get("name", "")):
                # the widest page: a new record may come after the seeded ones
                schema = parameter.get("schema") or {}
                query[parameter["name"]] = str(int(schema.get("maximum", 100)))
        url = self.base + re.sub(r"\{([^}]+)\}", lambda m: urllib.parse.quote(str(values.get(m[1], "1"))), path)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        return call(method, url, body, headers, body_media(operation))


def round_trip(spec: dict, plan: Plan | None, base: str, listed: list[dict] | None) -> str:
    """``pass`` or the failed step and why."""
    if plan is None:
        return "no CRUD resource"
    caller = Caller(spec, base, listed)
    values = dict(plan.path_values)
    method, create = plan.operations["create"]
    body = plan.create_body
    made = caller.send(method, plan.collection, create, values, body)
    if not 200 <= made.status < 300:
        return f"create: {made.status} {made.text[:80]}"
    created = _record(made.body, body)
    ident = _id_of(created, plan.id_param) if created else None
    if ident is None:
        return f"create: no id in the answer {made.text[:60]}"
    values[plan.id_param] = ident
    method, read = plan.operations["read"]
    got = caller.send(method, plan.item, read, values)
    record = _record(got.body, body)
    if got.status != 200 or not isinstance(record, dict):
        return f"read equals: {got.status} {got.text[:60]}"
    # A read may answer another projection of the record than the create (its own schema):
    # every field both show must agree.
    differing = [key for key in created if key in record and record[key] != created[key]]
    if differing or _id_of(record, plan.id_param) != ident:
        return f"read equals: {', '.join(differing[:3]) or 'the id'} differs"
    if "update" in plan.operations:
        method, update = plan.operations["update"]
        where = plan.change_path
        if where is None:
            return "update: no plain string field to change"
        change = json.loads(json.dumps(plan.update_body))
        target = change
        for key in where[:-1]:
            target = target.setdefault(key, {})
        target[where[-1]] = "bench-updated"
        changed = caller.send(method, plan.item, update, values, change)
        if not 200 <= changed.status < 300:
            return f"update: {changed.status} {changed.text[:80]}"
        after = _record(caller.send(*_read(plan), values).body, body) or {}
        field_name = _field(after, where[-1])
        if after.get(field_name) != "bench-updated":
            return f"update persisted: {field_name} is {str(after.get(field_name))[:40]!r}"
        sent = set(_get_path(change, where[:-1]) or {}) if len(where) > 1 else set(change)
        sent |= {_field(created, name) for name in sent}
        stamps = re.compile(r"updated|modified|changed|etag|version", re.I)
        # Against the read before the update: a read may show another projection than the
        # create (Discourse's tag group: the create answers tags, the read tag_names).
        lost = [k for k, v in record.items() if k not in sent and not stamps.search(k) and after.get(k) != v]
        if lost:
            return f"update kept unsent fields: {', '.join(lost[:3])} changed"
    if "list" in plan.operations:
        method, listing = plan.operations["list"]
        listed_reply = caller.send(method, plan.collection, listing, values)
        if listed_reply.status != 200 or not _contains(listed_reply.body, ident):
            return f"list contains: {listed_reply.status} {'not listed' if listed_reply.status == 200 else ''}".strip()
    if "delete" in plan.operations:
        method, delete = plan.operations["delete"]
        gone = caller.send(method, plan.item, delete, values)
        if not 200 <= gone.status < 300:
            return f"delete: {gone.status} {gone.text[:80]}"
        again = caller.send(*_read(plan), values)
        declared = set(plan.operations["read"][1].get("responses", {}))
        if not declared & {"404", "4XX", "default"}:  # only declared statuses may come back
            if not 400 <= again.status < 500:
                return f"read after delete: {again.status} (not a 4xx; the contract declares no 404)"
            return f"pass (gone: {again.status}; the read declares no 404{' either' if again.status == 404 else ''})"
        if again.status != 404:
            return f"read after delete: {again.status} (not 404)"
    return "pass"


def _read(plan: Plan) -> tuple[str, str, dict]:
    method, operation = plan.operations["read"]
    return method, plan.item, operation


# -- the sandbox's own facts ---------------------------------------------------------------------
def sandbox_facts(root: str) -> tuple[str, list[dict] | None]:
    """(the API's base URL, the listed credentials or ``None``), from the control API."""
    health = call("GET", root + "/__sandbox/health")
    base_path = health.body.get("basePath") if isinstance(health.body, dict) else None
    listed = call("GET", root + "/__sandbox/credentials")
    credentials = listed.body if listed.status == 200 and isinstance(listed.body, list) else None
    return root + (base_path if base_path is not None else "/api").rstrip("/"), credentials


def conformance(spec: Path, base: str, credentials: list[dict] | None, sandbox_root: Path, args) -> dict:
    command = [sys.executable, "-m", "timbrix_sandbox", "conformance", "--base-url", base, "--contract", str(spec)]
    command += ["--seed", "1", "--max-examples", str(args.conformance_max_examples)]
    # One tenant's credential for every scheme, each sent where its scheme says (--credential).
    tenant = next((c.get("tenant") for c in credentials or []), None)
    for entry in credentials or []:
        if entry.get("tenant") == tenant and entry.get("scheme") and entry.get("value"):
            command += ["--credential", f"{entry['scheme']}={entry['value']}"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        env = {**os.environ, "PYTHONPATH": str(sandbox_root)}
        try:
            done = subprocess.run(
                [*command, "--json", str(report)],
                cwd=sandbox_root,
                capture_output=True,
                text=True,
                timeout=args.conformance_timeout,
                env=env,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"no result within {args.conformance_timeout:.0f} s"}
        if not report.exists():
            said = (done.stderr or done.stdout).strip()
            return {"error": " ".join(said.split())[-300:] or "no report", "exit_code": done.returncode}
        data = json.loads(report.read_text())
        if args.reports:
            args.reports.mkdir(parents=True, exist_ok=True)
            (args.reports / f"{spec.stem}.json").write_text(report.read_text())
    violations = data.get("violations", [])
    by_cause = data.get("violationsByCause") or {"implementation": len(violations), "contract": 0}
    return {
        "cases": data.get("cases"),
        "violations": len(violations),
        "implementation": by_cause["implementation"],
        "contract_gaps": by_cause["contract"],
        "resources_tested": resources_tested(data),
        "gaps_by_rule": dict(collections.Counter(v.get("rule") for v in violations if v.get("cause") == "contract")),
        "implementation_by_check": dict(
            collections.Counter(v["check"] for v in violations if v.get("cause") != "contract").most_common()
        ),
        "suite_errors": len(data.get("suiteErrors", [])),
        "exit_code": done.returncode,
        "first_violations": [f"{v['operation']}: {v['check']}: {v['message'][:100]}" for v in data["violations"][:5]],
        "by_check": dict(collections.Counter(v["check"] for v in data["violations"]).most_common()),
    }


def resources_tested(report: dict) -> int:
    """How many resources the behaviour scenarios created and read back (one create operation
    each with a ``create_then_read`` check) in a conformance report."""
    return len({c["operation"] for c in report.get("checks", []) if c["check"] == "create_then_read"
                and c["operation"].startswith("POST ") and c["passed"] + c["failed"]})  # fmt: skip


LOAD_PROBE = """
import json, resource, sys, time
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started, cpu = time.perf_counter(), time.process_time()
from timbrix_sandbox.contract.loading import load_contract
document = load_contract(sys.argv[1])
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
added = round((peak - base) / 1024, 1)
figures = {"seconds": round(seconds, 3), "cpu_s": round(cpu, 3), "peak_mib": round(peak / 1024, 1)}
print(json.dumps({**figures, "added_mib": added}))
"""


def measure_loading(spec: Path, sandbox_root: Path) -> dict:
    """Seconds and peak memory of ``load_contract`` alone, cold, in a fresh process of the
    sandbox checkout (parse, bundle, normalise; no Connexion, no model)."""
    env = {**os.environ, "PYTHONPATH": str(sandbox_root)}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_PROBE, str(spec)], cwd=sandbox_root, capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        return {"error": _first_error_line(done.stderr)}
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- one spec, both tools -------------------------------------------------------------------------
def run_tool(tool: str, spec_path: Path, spec: dict | None, plan: Plan | None, args, prism: Path | None) -> dict:
    if tool == "sandbox":
        started = start_sandbox(spec_path, args.sandbox_root, args.start_timeout)
    else:
        started = start_prism(prism, spec_path, args.start_timeout)
    result: dict = {"starts": started.process is not None}
    try:
        if started.process is None:
            result["error"] = started.error
            return result
        result["first_answer_s"] = started.first_answer_s
        result["startup_cpu_s"] = started.startup_cpu_s
        if tool == "sandbox":
            base, credentials = sandbox_facts(started.base)
            result["credentials_listed"] = credentials is not None
            if credentials is None and args.credential:
                credentials = [_given(entry, spec) for entry in args.credential]
        else:
            base, credentials = started.base, None  # Prism serves the paths at its root
        result["crud"] = round_trip(spec, plan, base, credentials) if spec is not None else "spec not loaded"
        result["rss_mib"] = peak_rss_mib(started.process.pid)
        if tool == "sandbox" and args.conformance:
            result["conformance"] = conformance(spec_path, base, credentials, args.sandbox_root, args)
        return result
    finally:
        if started.process is not None:
            stop_process(started.process)
        if started.log is not None:
            started.log.unlink(missing_ok=True)


def _given(entry: str, spec: dict | None) -> dict:
    """``SCHEME=VALUE`` from the command line as a listed credential."""
    scheme, _, value = entry.partition("=")
    declared = ((spec or {}).get("components") or {}).get("securitySchemes", {}).get(scheme, {})
    return {"scheme": scheme, "type": declared.get("type"), "in": declared.get("in"), "value": value}


def read_manifest(corpus: Path) -> list[tuple[str, Path]]:
    with open(corpus / "MANIFEST.tsv", encoding="utf-8") as handle:
        return [(row["name"], corpus / row["file"]) for row in csv.DictReader(handle, delimiter="\t")]


def _short(text: str, width: int) -> str:
    """An error for a table cell: no program prefix, files by their base name."""
    text = re.sub(r"^timbrix-sandbox: ", "", text)
    text = re.sub(r"(?<![\w:/])(/[^\s'\"/]+)+/([^/\s'\"]+)", r"\2", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _cell(result: dict | None) -> list[str]:
    if result is None:
        return ["-", "-", "-", "-"]
    if not result["starts"]:
        return [f"n: {_short(result['error'], 60)}", "-", "-", "-"]
    crud = _short(result.get("crud", "-"), 48)
    cpu = result.get("startup_cpu_s")
    first = f"{result['first_answer_s']:.1f}" + (f" / {cpu:.1f}" if cpu is not None else "")
    return ["y", first, f"{result.get('rss_mib') or 0:.0f}", crud]


def print_table(rows: list[dict], title: str) -> None:
    header = ["spec", "load cpu s", "sandbox starts", "1st answer s / cpu s", "MiB", "CRUD", "conformance"]
    header += ["prism starts", "1st answer s / cpu s", "MiB", "CRUD"]
    lines = [header]
    for row in rows:
        sandbox = row["tools"].get("sandbox")
        conf = (sandbox or {}).get("conformance")
        if conf is None:
            conf_cell = "-"
        elif "error" in conf:
            conf_cell = f"error: {_short(conf['error'], 40)}"
        else:
            conf_cell = f"{conf['cases']} cases, {conf['violations']} violations"
            if "contract_gaps" in conf:  # runs from before the causes were told apart have no split
                conf_cell += f" ({conf['implementation']} impl., {conf['contract_gaps']} contract)"
        loading = row.get("loading") or {}
        load_cell = "-"
        if "cpu_s" in loading:
            load_cell = f"{loading['cpu_s']:.2f}"
        elif "seconds" in loading:  # a run from before CPU time was measured: wall time
            load_cell = f"{loading['seconds']:.2f} wall"
        if "error" in loading:
            load_cell = f"n: {_short(loading['error'], 30)}"
        lines.append([row["name"], load_cell, *_cell(sandbox), conf_cell, *_cell(row["tools"].get("prism"))])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print(f"\n{title}")
    for index, line in enumerate(lines):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="a folder with MANIFEST.tsv")
    parser.add_argument("--only", action="append", metavar="NAME", help="a spec's name in the manifest (repeatable)")
    parser.add_argument("--sandbox-root", type=Path, default=ROOT, help="the checkout whose sandbox is served")
    parser.add_argument("--prism", metavar="PATH", help="the prism binary (default: bench/.prism, installed on use)")
    parser.add_argument("--no-prism", dest="prism_enabled", action="store_false")
    parser.add_argument("--no-conformance", dest="conformance", action="store_false")
    parser.add_argument("--conformance-max-examples", type=int, default=5)
    parser.add_argument("--reports", type=Path, metavar="DIR", help="keep each spec's full conformance report here")
    parser.add_argument("--conformance-timeout", type=float, default=300.0)
    parser.add_argument("--start-timeout", type=float, default=120.0)
    parser.add_argument("--label", default="", help="names the results file (e.g. before)")
    parser.add_argument(
        "--credential",
        action="append",
        default=[],
        metavar="SCHEME=VALUE",
        help="a credential for a security scheme when the sandbox lists none (e.g. a fixtures file's token)",
    )
    parser.add_argument("--table", type=Path, metavar="RESULT.json", help="print the table of an earlier run and stop")
    args = parser.parse_args()
    if args.table:
        earlier = json.loads(args.table.read_text(encoding="utf-8"))
        title = f"Corpus run {earlier['date']} (sandbox {earlier['sandbox_commit']} from {earlier['sandbox_root']})"
        print_table(earlier["specs"], title)
        return 0
    args.sandbox_root = args.sandbox_root.resolve()
    prism = prism_binary(args.prism) if args.prism_enabled else None
    specs = [(n, p) for n, p in read_manifest(args.corpus) if not args.only or n in args.only]
    commit = subprocess.run(
        ["git", "-C", str(args.sandbox_root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "sandbox_root": str(args.sandbox_root),
        "sandbox_commit": commit,
        "prism": PRISM_VERSION if prism else None,
        "machine": f"{os.cpu_count()} cpus, {sys.platform}",
        "conformance_max_examples": args.conformance_max_examples if args.conformance else None,
        "specs": [],
    }
    for name, path in specs:
        print(f"{name} ...", flush=True)
        try:
            spec = load_contract(path)
            plan = plan_round_trip(spec)
        except Exception as error:  # noqa: BLE001 - the row says why; the run goes on
            spec, plan = None, None
            print(f"  planning failed: {error}")
        row = {"name": name, "file": str(path), "resource": plan.item if plan else None, "tools": {}}
        row["loading"] = measure_loading(path, args.sandbox_root)
        for tool in ("sandbox", "prism") if prism else ("sandbox",):
            row["tools"][tool] = run_tool(tool, path, spec, plan, args, prism)
            print(f"  {tool}: {json.dumps(row['tools'][tool])[:300]}", flush=True)
        report["specs"].append(row)
    print_table(report["specs"], f"Corpus run {report['date']} (sandbox {commit} from {args.sandbox_root})")
    out = ROOT / "bench" / "results" / f"corpus-{report['date'][:10]}{'-' + args.label if args.label else ''}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
