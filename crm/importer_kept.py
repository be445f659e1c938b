"""A field kept only while another has a value (a customer's birthday, only for individuals)
in a set-based update whose file does not bring that other field (the kind).

The row path's dry run keeps the file's birthday (validate(partial) cannot judge it), and
records.update_many judges it at write time by the record's kind: a company's is dropped. So
the staged rows hold the file's value (importer._fast_plan), an upsert's new records keep it
by the kind's default (as validate() does on create), and the set-based write keeps it by the
record's kind (crm/importer_updates.py)."""
from __future__ import annotations


def later(spec, mode: str, mapped) -> bool:
    """Whether an update judges the field by the record's other field at write time."""
    return bool(spec.only_when) and mode != "create" and spec.only_when[0] not in mapped


def fields(entity, names: list[str]) -> list[str]:
    """Those of the staged fields names."""
    specs = entity.spec
    return [n for n in names if later(specs[n], "update", names)]


def stored(entity, n: str, value: str) -> str:
    """The field's value (SQL) as update_many stores it: kept while the record (t) has the
    other field's wanted value; a company's birthday is dropped, even one it had."""
    from crm import importer

    other, wanted = entity.spec[n].only_when
    return f"CASE WHEN t.{other} = {importer._quote(wanted)} THEN {value} END"


def created(entity, n: str, constants: dict) -> str:
    """The field's value as a new record stores it: by the other field's default."""
    other, wanted = entity.spec[n].only_when
    # (a NULL of the column's type: PostgreSQL's copy of the rows is typed by the stage's)
    return f"c.f_{n}" if constants.get(other) == wanted else f"CASE WHEN false THEN c.f_{n} END"
