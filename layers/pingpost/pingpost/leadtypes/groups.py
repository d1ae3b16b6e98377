"""Numbered groups of a lead type's fields: written once, read once for each instance.

    {"repeat": 2, "required": 1, "fields": [{"name": "Driver_#_Birthdate", ...},
        {"repeat": 3, "required": 0, "fields": [{"name": "Driver_#_Incident_Type_#", ...}]}]}

Each `#` of a name is the number of an enclosing group's instance, outermost first; the first
`required` instances (1 unless said) ask what each field's `ping` and `post` say, the others
nothing. Aliases are numbered as names are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A numbered group's bounds: its instances and how deep groups nest.
MOST_REPEATS = 20
MOST_DEPTH = 2
_GROUP_KEYS = frozenset({"repeat", "required", "fields"})


class GroupError(ValueError):
    """A bad group or name, its message naming the file and the field (the loader raises it
    again as a LeadTypeError)."""


def expanded(path: Path, items: list[Any], *, standard: bool = False) -> list[dict[str, Any]]:
    """The entries of a file's `fields`, a group's once for each instance (`standard`: the
    standard library's, which has no groups)."""
    return _expanded(path, items, (), standard=standard)


def _expanded(
    path: Path, items: list[Any], numbers: tuple[tuple[int, bool], ...], *, standard: bool
) -> list[dict[str, Any]]:
    """`items` as field entries; `numbers`: the enclosing groups' instance numbers, each with
    whether that instance is one the group requires."""
    out: list[dict[str, Any]] = []
    for n, entry in enumerate(items, 1):
        if isinstance(entry, dict) and "repeat" in entry and not standard:
            out.extend(_group(path, entry, numbers, n))
            continue
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.replace("#", "").isidentifier():
            raise GroupError(f"{path.name}: field {n}: must be an object with a name")
        if name.count("#") != len(numbers):
            where = f"{len(numbers)} numbered group(s)" if numbers else "no numbered group"
            raise GroupError(
                f"{path.name}: field {name}: a bad repeat: it is in {where}, so its name needs"
                f" {len(numbers)} '#' (one for each group's number)"
            )
        if not numbers:
            out.append(entry)
            continue
        instance = dict(entry)
        for number, _ in numbers:
            instance["name"] = instance["name"].replace("#", str(number), 1)
        aliases = entry.get("aliases")
        if isinstance(aliases, list) and all(isinstance(a, str) for a in aliases):
            instance["aliases"] = [_numbered(a, numbers) for a in aliases]
        if not all(required for _, required in numbers):
            instance |= {"ping": "no", "post": False}
        out.append(instance)
    return out


def _numbered(name: str, numbers: tuple[tuple[int, bool], ...]) -> str:
    for number, _ in numbers:
        name = name.replace("#", str(number), 1)
    return name


def _group(
    path: Path, group: dict[str, Any], numbers: tuple[tuple[int, bool], ...], n: int
) -> list[dict[str, Any]]:
    """A numbered group's entries, instance by instance."""
    repeat, required = group.get("repeat"), group.get("required", 1)

    def fault(text: str) -> GroupError:
        return GroupError(f"{path.name}: field {n}: a bad repeat: {text}")

    unknown = sorted(set(group) - _GROUP_KEYS)
    if unknown:
        raise fault(f"unknown key {unknown[0]!r}")
    if type(repeat) is not int or not 1 <= repeat <= MOST_REPEATS:
        raise fault(f"repeat must be a whole number from 1 to {MOST_REPEATS}")
    if type(required) is not int or not 0 <= required <= repeat:
        raise fault(f"required must be a whole number from 0 to its repeat ({repeat})")
    if len(numbers) == MOST_DEPTH:
        raise fault(f"groups nest at most {MOST_DEPTH} deep")
    if not isinstance(group.get("fields"), list) or not group["fields"]:
        raise fault("fields must be a list of the group's fields")
    out: list[dict[str, Any]] = []
    for number in range(1, repeat + 1):
        within = (*numbers, (number, number <= required))
        out.extend(_expanded(path, group["fields"], within, standard=False))
    return out
