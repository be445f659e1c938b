"""Keeps the translation catalogs in step with the code (a developer tool, not a CLI contract):

    python -m crm.i18n_tools update    # extract msgids, merge them into every .po, compile .mo
    python -m crm.i18n_tools check     # list msgids without a translation (exit 1 if any)
    python -m crm.i18n_tools compile fa  # only compile one language's .po into its .mo

Msgids come from _(), gettext(), ngettext() and N_() in the code, and from the field specs:
labels, help texts, sections and choice labels, so a field added to a spec is extracted
without anyone marking it."""
from __future__ import annotations

import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from crm.i18n import ENTITY_PHRASES, ENTITY_PLURALS, LANGUAGES, LOCALE_DIR, _entity_msgid

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
METHODS = [("crm/**.py", "python"), ("pages/**.py", "python"), ("app.py", "python")]
TRANSLATED = [lang for lang in LANGUAGES if lang != "en"]


def spec_messages() -> list[str]:
    """Every text the field specs and entities show."""
    from crm import (activities, customers, deals, leads, market, pipelines, products,
                     service, settings, team)
    from crm.fields import META_FIELDS

    specs = [*META_FIELDS, *leads.FIELDS, *customers.FIELDS, *customers.CONTACT_FIELDS,
             *deals.FIELDS, *deals.LINE_FIELDS, *activities.ACTIVITY_FIELDS,
             *activities.TASK_FIELDS, *pipelines.STAGE_FIELDS, *settings.FIELDS,
             *products.FIELDS, *team.FIELDS, *service.SURVEY_FIELDS, *service.COMPLAINT_FIELDS,
             *market.COMPETITOR_FIELDS, *market.SHARE_FIELDS, *market.PRICE_FIELDS,
             *market.COST_FIELDS, *market.RETURN_FIELDS]
    found = []
    for f in specs:
        found += [f.label, f.help, f.section]
        found += [f.choice_label(c, translate=False) for c in f.choices
                  if not c.isupper() and c not in dict(f.choice_names)]
    for entity in [*entities(), market.COMPETITOR_SHARES, market.PRODUCT_COSTS]:
        found += [entity.label, entity.plural]
    return [m for m in dict.fromkeys(found) if m and isinstance(m, str)]


def entities() -> list:
    from crm.importer import entities

    return entities()


def template() -> Catalog:
    catalog = Catalog(project="crm", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            str(ROOT), METHODS, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",),
            strip_comment_tags=True):
        catalog.add(message, locations=[(filename, lineno)], auto_comments=comments,
                    context=context)
    for message in spec_messages():
        if message not in catalog:
            catalog.add(message, locations=[("crm/fields.py", 0)])
    for entity in entities():
        for phrase in ENTITY_PHRASES:
            catalog.add(_entity_msgid(phrase, entity), locations=[("crm/i18n.py", 0)])
        for singular, plural in ENTITY_PLURALS:
            catalog.add((_entity_msgid(singular, entity), _entity_msgid(plural, entity)),
                        locations=[("crm/i18n.py", 0)])
    return catalog


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"


def load(lang: str) -> Catalog:
    path = po_path(lang)
    if not path.exists():
        return Catalog(locale=lang, project="crm", charset="utf-8")
    with path.open("rb") as fh:
        return read_po(fh, locale=lang)


def save(catalog: Catalog, lang: str) -> None:
    path = po_path(lang)
    path.parent.mkdir(parents=True, exist_ok=True)
    catalog.fuzzy = False  # the header is ours, not a guess
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, omit_header=False, sort_output=True,
             ignore_obsolete=True, include_previous=False)
    path.write_bytes(buffer.getvalue())
    compile_mo(catalog, lang)


def compile_mo(catalog: Catalog, lang: str) -> None:
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    po_path(lang).with_suffix(".mo").write_bytes(buffer.getvalue())


def update() -> None:
    pot = template()
    for lang in TRANSLATED:
        catalog = load(lang)
        catalog.update(pot, no_fuzzy_matching=True)
        save(catalog, lang)


def missing(lang: str) -> list[str]:
    """Msgids of the code that the language's catalog lacks or leaves untranslated."""
    catalog = load(lang)
    out = []
    for message in template():
        if not message.id:
            continue
        found = catalog.get(message.id, context=message.context)
        text = found.string if found else None
        if not text or (isinstance(text, tuple) and not all(text)) or (found and found.fuzzy):
            out.append(message.id if isinstance(message.id, str) else message.id[0])
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["update"]:
        update()
        return 0
    if argv[:1] == ["compile"] and len(argv) == 2 and argv[1] in TRANSLATED:
        compile_mo(load(argv[1]), argv[1])
        return 0
    if argv[:1] == ["check"]:
        bad = {lang: missing(lang) for lang in TRANSLATED}
        for lang, ids in bad.items():
            for msgid in ids:
                print(f"{lang}: {msgid!r}")
        return 1 if any(bad.values()) else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
