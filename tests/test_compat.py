"""The library patches and internals in ``timbrix_sandbox/http/compat.py``: one test per internal
that fails as soon as the installed library differs from the pinned one, plus tests that the
patches take effect (and are still needed)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import re
import tomllib
import warnings
from pathlib import Path

import pytest
from conftest import MICHAEL, customer_url
from connexion.exceptions import InvalidSpecification
from connexion.spec import OpenAPISpecification, Specification
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

import timbrix_sandbox
from timbrix_sandbox.http import compat

ROOT = str(Path(__file__).resolve().parent.parent)
USER_MODULES = {
    "compat": "timbrix_sandbox.http.compat",
    "oas31": "timbrix_sandbox.http.oas31",
    "server": "timbrix_sandbox.http.server",
    "store": "timbrix_sandbox.engine.store",
}

compat.install()


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;#]+)", line)
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(3)
    return pins


# -- versions ------------------------------------------------------------------------------------
def test_installed_versions_are_the_pinned_ones():
    assert compat.INSTALLED == compat.PINNED, compat.version_problems()


def test_pins_agree_with_pyproject_and_constraints():
    with open(f"{ROOT}/pyproject.toml", "rb") as file:
        declared = _pins(tomllib.load(file)["project"]["dependencies"])
    with open(f"{ROOT}/constraints.txt") as file:
        constrained = _pins(file.read().splitlines())
    for name, version in compat.PINNED.items():
        assert declared.get(name) == version, f"pyproject.toml pins {name}=={declared.get(name)}, compat.py {version}"
        assert constrained.get(name) == version, f"constraints.txt pins {name}=={constrained.get(name)}"


def test_an_unpinned_version_refuses_to_start(monkeypatch):
    monkeypatch.setitem(compat.INSTALLED, "connexion", "3.4.0")
    monkeypatch.delenv(compat.ALLOW_UNPINNED_ENV, raising=False)
    with pytest.raises(compat.UnpinnedLibrary, match=r"connexion 3\.4\.0 is installed, but 3\.3\.0 is pinned"):
        compat.check_versions()


def test_an_unpinned_version_only_warns_when_allowed(monkeypatch):
    monkeypatch.setitem(compat.INSTALLED, "tinydb", None)
    monkeypatch.setenv(compat.ALLOW_UNPINNED_ENV, "1")
    with pytest.warns(RuntimeWarning, match=r"tinydb \(not installed\) is installed, but 4\.9\.0 is pinned"):
        compat.check_versions()


# -- one test per internal -----------------------------------------------------------------------
@pytest.mark.parametrize("internal", compat.INTERNALS, ids=lambda internal: internal.target)
def test_internal_is_as_pinned(internal):
    version = compat.INSTALLED[internal.library]
    where = f"{internal.target} ({internal.use} by {compat.USERS[internal.by]})"
    try:
        qualname, params, sha256 = compat.fingerprint(internal.target)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"{internal.library} {version}: {where} is gone ({exc})")
    assert qualname == internal.target.split(":")[1], f"{where} is now {qualname}"
    assert params == internal.params, f"{internal.library} {version}: {where} takes ({params}), not ({internal.params})"
    assert sha256 == internal.sha256, (
        f"{internal.library} {version}: the source of {where} changed (sha256 {sha256}, pinned {internal.sha256}): "
        "re-read the code that uses it, then update compat.INTERNALS (python -m timbrix_sandbox.http.compat)"
    )


@pytest.mark.parametrize(
    "internal", [i for i in compat.INTERNALS if i.use == "overridden"], ids=lambda internal: internal.target
)
def test_overridden_internal_is_overridden(internal):
    """The table is true: the module it names does override the method."""
    module = importlib.import_module(USER_MODULES[internal.by])
    base = compat.original(internal.target)
    name = internal.target.rsplit(".", 1)[1]
    owners = [
        cls
        for cls in vars(module).values()
        if inspect.isclass(cls) and cls.__module__ == module.__name__ and name in vars(cls)
        and any(base is vars(b).get(name) or base is getattr(vars(b).get(name), "__func__", None) for b in cls.__mro__)
    ]
    assert owners, f"{module.__name__} no longer overrides {internal.target}: drop it from compat.INTERNALS"


def _library_overrides():
    """``(our class, library target)`` for every method a project class overrides on a class of a
    pinned library."""
    for info in pkgutil.walk_packages(timbrix_sandbox.__path__, "timbrix_sandbox."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            for name, value in vars(cls).items():
                if not (inspect.isfunction(value) or isinstance(value, (classmethod, staticmethod, property))):
                    continue  # class attributes (TinyDB's table_class, document_id_class) are public settings
                for base in cls.__mro__[1:]:
                    if name in vars(base):
                        if base.__module__.split(".")[0] in compat.PINNED:
                            target = f"{base.__module__}:{base.__qualname__}.{name}"
                            yield f"{module.__name__}.{cls.__qualname__}", target
                        break


def test_every_override_of_a_pinned_library_is_registered():
    registered = {i.target for i in compat.INTERNALS if i.use == "overridden"} | compat.PUBLIC_OVERRIDES
    missing = sorted(f"{ours} overrides {target}" for ours, target in _library_overrides() if target not in registered)
    assert not missing, "register these in compat.INTERNALS (or PUBLIC_OVERRIDES):\n" + "\n".join(missing)


# -- the patches take effect (and are still needed) -------------------------------------------------
OPENAPI_31 = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/things": {
            "get": {
                "operationId": "things",
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {
                                "schema": {"type": ["string", "null"], "const": "x", "$defs": {"n": {"const": 1}}},
                            }
                        },
                    }
                },
            }
        }
    },
}


def test_an_openapi_31_document_validates():
    spec = Specification.from_dict(OPENAPI_31)
    assert isinstance(spec, OpenAPISpecification)


def test_an_invalid_openapi_31_document_is_refused():
    with pytest.raises(OpenAPIValidationError):
        Specification.from_dict({"openapi": "3.1.0", "paths": {}})  # no info


def test_connexion_alone_still_refuses_openapi_31():
    """When this fails, Connexion accepts 3.1 by itself: drop the patch."""
    with pytest.raises(InvalidSpecification):
        compat.original("connexion.spec:Specification._validate_spec")(OpenAPISpecification, OPENAPI_31)


def test_openapi_30_documents_are_still_checked_by_connexion():
    with pytest.raises(InvalidSpecification):
        Specification.from_dict({"openapi": "3.0.3", "info": {"title": "t"}, "paths": {}})  # no info.version


def test_install_is_idempotent():
    spec_patch = OpenAPISpecification.__dict__["_validate_spec"]
    compat.install()
    if importlib.util.find_spec("timbrix_sandbox.http.speedups"):  # the shim app.py imports, while it exists
        importlib.reload(importlib.import_module("timbrix_sandbox.http.speedups"))
    assert OpenAPISpecification.__dict__["_validate_spec"] is spec_patch
    assert compat.installed()


def test_the_served_contract_loads_through_the_patches(client):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert client.get(customer_url(), headers=MICHAEL).status_code == 200
