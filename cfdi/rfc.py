"""RFC (Registro Federal de Contribuyentes) checks for the CFDI 4.0 receptor.

The rules follow SAT's ``tdCFDI:t_RFC`` type plus a real-date check
(reference §3.1-3.3):

* Format: ``[A-Z&Ñ]{3,4}[0-9]{2}(0[1-9]|1[012])(0[1-9]|[12][0-9]|3[01])[A-Z0-9]{2}[0-9A]``,
  which also fixes the length at 12 (persona moral) or 13 (persona física).
  Input is **not** normalised: lowercase, spaces or dashes are rejected, because
  the API contract's pattern is uppercase and a sandbox must not accept what the
  real service would refuse.
* Date: the six digits after the letters must be a real calendar date, read as
  20YY (python-stdnum's reading; the XSD alone would accept ``990231``).
* Check digit: optional (``strict=True``). The vendor's own documentation example
  ``DUM901231AB3`` fails it, and about 1.5% of real RFCs do too, so enforcing it
  by default would reject data users copy from the docs.
* The generic RFCs ``XAXX010101000`` (público en general) and ``XEXX010101000``
  (extranjero) are 13 characters, so they count as persona física, and they are
  exempt from the check digit (``XAXX010101000`` does not satisfy it).
"""

from __future__ import annotations

import functools
import re
from typing import Literal

from stdnum.exceptions import ValidationError
from stdnum.mx import rfc as _stdnum_rfc

Persona = Literal["fisica", "moral"]

GENERIC_RFCS: frozenset[str] = frozenset({"XAXX010101000", "XEXX010101000"})

# SAT tdCFDI:t_RFC. Used with fullmatch(): "^...$" would also accept a trailing
# "\n" because "$" matches before a final newline. Explicit [A-Z] and [0-9]
# classes (never \w or \d) so only ASCII letters/digits plus & and Ñ pass.
_T_RFC = re.compile(r"[A-Z&Ñ]{3,4}[0-9]{2}(0[1-9]|1[012])(0[1-9]|[12][0-9]|3[01])[A-Z0-9]{2}[0-9A]")


def persona_for_rfc(rfc: str) -> Persona | None:
    """Return the persona type implied by the RFC length: 12 moral, 13 física.

    Any other length (or a non-string) gives ``None``. Only the length is looked
    at, because that is how SAT and the vendor tell the two apart.
    """
    if not isinstance(rfc, str):
        return None
    if len(rfc) == 12:
        return "moral"
    if len(rfc) == 13:
        return "fisica"
    return None


def is_generic_rfc(rfc: str) -> bool:
    """True for XAXX010101000 and XEXX010101000 (exact, uppercase)."""
    return isinstance(rfc, str) and rfc in GENERIC_RFCS


def has_valid_format(rfc: str) -> bool:
    """True if *rfc* matches SAT's t_RFC pattern exactly (uppercase, 12 or 13 chars)."""
    return isinstance(rfc, str) and _T_RFC.fullmatch(rfc) is not None


def date_part(rfc: str) -> str:
    """The YYMMDD part of a well-formed RFC (the 6 characters before the homoclave)."""
    return rfc[-9:-3]


def has_valid_date(rfc: str) -> bool:
    """True if the YYMMDD part of a well-formed RFC is a real date (YY read as 20YY).

    Delegates to ``stdnum.mx.rfc.validate`` (without check digits). Two details:

    * stdnum upper-cases its input, so this must only be called after
      :func:`has_valid_format`, which rejects lowercase.
    * stdnum also rejects persona-física RFCs whose first four letters are in its
      list of offensive words (e.g. ``CACA``), raising the same exception as for a
      bad date. That is a name-derivation rule, not part of SAT's t_RFC, and would
      mislabel the error as a bad date. So the letters are replaced by a neutral
      ``X`` prefix of the same length before asking stdnum; only the date (and
      the already-checked shape) is then being judged.
    """
    if not has_valid_format(rfc):
        return False
    letters = len(rfc) - 9
    return _real_date(letters, rfc[letters : letters + 6])


@functools.lru_cache(maxsize=4096)
def _real_date(letters: int, yymmdd: str) -> bool:
    """stdnum's verdict on an RFC of ``letters`` neutral letters, this date and a neutral
    homoclave. Without check digits stdnum judges only the shape (already checked by
    :func:`has_valid_format`) and the date, so the verdict is the date's, and is remembered:
    every create and update asks it, and stdnum's ``validate`` was two thirds of the CFDI
    rules' cost (a customer create, in-process)."""
    try:
        _stdnum_rfc.validate("X" * letters + yymmdd + "000", validate_check_digits=False)
    except ValidationError:
        return False
    return True


def has_valid_check_digit(rfc: str) -> bool:
    """True if the last character matches SAT's check-digit algorithm.

    Uses ``stdnum.mx.rfc.calc_check_digit`` (same algorithm as satcfdi and
    @nodecfdi/rfc, reference §3.2). Deliberately *not* stdnum's
    ``validate_check_digits=True``: that also imposes a homoclave pattern
    (``^[1-9A-V][1-9A-Z][0-9A]$``) which is not a check-digit rule and would
    make the "dígito verificador" message wrong. Generic RFCs are exempt.
    """
    if not has_valid_format(rfc):
        return False
    if rfc in GENERIC_RFCS:
        return True
    return rfc[-1] == _stdnum_rfc.calc_check_digit(rfc[:-1])


def is_valid_rfc(rfc: str, strict: bool = False) -> bool:
    """True if *rfc* passes the format and date rules (and the check digit if *strict*).

    Same rules, in the same order, as the RFC part of
    :func:`cfdi.rules.first_violation`.
    """
    if not has_valid_format(rfc) or not has_valid_date(rfc):
        return False
    return not strict or has_valid_check_digit(rfc)
