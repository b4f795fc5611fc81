"""The committed postal-code file and the pure parts of its generator (no network)."""

from __future__ import annotations

import datetime
import importlib.util
import pickle
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "cfdi" / "data" / "codigos_postales.txt"


def _load_generator():
    path = ROOT / "scripts" / "generate_postal_codes.py"
    spec = importlib.util.spec_from_file_location("generate_postal_codes", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


def test_data_file_header_and_body() -> None:
    lines = DATA.read_text(encoding="ascii").splitlines()
    header = [line for line in lines if line.startswith("#")]
    body = [line for line in lines if not line.startswith("#")]
    assert lines[: len(header)] == header  # header first
    text = "\n".join(header)
    assert "# source: satcfdi==26.10.1" in text
    assert re.search(r"# wheel-sha256: [0-9a-f]{64}\b", text)
    assert "catalogs.db" in text and "catCFDI.xsd" in text
    assert re.search(r"# generated: \d{4}-\d{2}-\d{2}", text)
    assert f"# count: {len(body)}" in header
    assert len(body) == 95_749
    assert body == sorted(set(body))
    assert all(re.fullmatch(r"[0-9]{5}", c, flags=re.ASCII) for c in body)
    assert body[0] == "00000"  # kept as SAT ships it; rejected in code


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickled_keys_are_decoded_without_unpickling(protocol: int) -> None:
    assert gen.decode_pickled_str(pickle.dumps("86500", protocol=protocol)) == "86500"


@pytest.mark.parametrize("obj", [datetime.date(2020, 1, 1), ["86500"], ("86500", "86501"), 86500, None])
def test_anything_but_a_plain_string_pickle_is_refused(obj: object) -> None:
    with pytest.raises(gen.GenerationError):
        gen.decode_pickled_str(pickle.dumps(obj, protocol=4))


def test_malicious_pickle_is_refused_not_executed() -> None:
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('executed')",))

    with pytest.raises(gen.GenerationError):
        gen.decode_pickled_str(pickle.dumps(Boom(), protocol=4))
    with pytest.raises(gen.GenerationError):
        gen.decode_pickled_str(b"not a pickle")


XSD = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
<xs:simpleType name="c_Otro"><xs:restriction base="xs:string">
<xs:enumeration value="99999"/></xs:restriction></xs:simpleType>
<xs:simpleType name="c_CodigoPostal"><xs:restriction base="xs:string"><xs:whiteSpace value="collapse"/>
<xs:enumeration value="00000"/><xs:enumeration value="01000"/><xs:enumeration value="00000"/>
</xs:restriction></xs:simpleType></xs:schema>"""


def test_xsd_enumeration_of_c_codigopostal_only() -> None:
    assert gen.codes_from_xsd(XSD) == ["00000", "01000", "00000"]


def test_xsd_without_the_type_fails() -> None:
    with pytest.raises(gen.GenerationError):
        gen.codes_from_xsd(XSD.replace(b"c_CodigoPostal", b"c_Nada"))


def test_sources_that_disagree_fail_loudly() -> None:
    gen.compare({"01000", "02000"}, {"01000", "02000"})
    with pytest.raises(gen.GenerationError, match="1 only in catalogs.db"):
        gen.compare({"01000", "02000"}, {"01000"})
