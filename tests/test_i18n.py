"""Languages: calendars, number formats, search normalisation."""
from datetime import date, timedelta

import pytest
from hypothesis import given, settings as hyp_settings, strategies as st

from crm import i18n, search
from crm.fields import FIRST_DATE, LAST_DATE

DAYS = st.dates(min_value=FIRST_DATE, max_value=LAST_DATE)


@pytest.fixture(autouse=True)
def english_afterwards():
    yield
    i18n.set_language("en")


@given(DAYS)
def test_jalali_round_trip(day):
    assert i18n.from_jalali(*i18n.to_jalali(day)) == day


@given(DAYS)
def test_jalali_days_follow_each_other(day):
    """The next Gregorian day is the next Jalali day: same month and day + 1, or day 1 of the
    next month (29, 30 or 31 days before it), or 1 Farvardin after the last day of Esfand."""
    y, m, d = i18n.to_jalali(day)
    ny, nm, nd = i18n.to_jalali(day + timedelta(days=1))
    if (ny, nm) == (y, m):
        assert nd == d + 1
    else:
        assert nd == 1
        assert (ny, nm) == ((y, m + 1) if m < 12 else (y + 1, 1))
        assert d == (31 if m <= 6 else 30 if m <= 11 else d) and d in (29, 30, 31)


@given(DAYS)
@hyp_settings(max_examples=200)
def test_a_persian_date_reads_back_as_typed(day):
    i18n.set_language("fa")
    shown = i18n.format_date(day)
    assert shown.isascii() is False  # Persian digits
    assert i18n.parse_date(shown) == day
    assert i18n.parse_date(i18n.latin_digits(shown)) == day


def test_known_jalali_dates():
    assert i18n.to_jalali(date(2025, 3, 21)) == (1404, 1, 1)  # Nowruz
    assert i18n.to_jalali(date(2026, 11, 30)) == (1405, 9, 9)
    i18n.set_language("fa")
    assert i18n.format_date(date(2026, 11, 30)) == "۱۴۰۵/۰۹/۰۹"
    assert i18n.month_name(1405, 9) == "آذر ۱۴۰۵"
    assert i18n.parse_date("١٤٠٥/٩/٩") == date(2026, 11, 30)  # Arabic-Indic digits too
    with pytest.raises(ValueError):
        i18n.parse_date("1405/13/01")
    with pytest.raises(ValueError):
        i18n.parse_date("next tuesday")


def test_numbers_and_money_per_locale():
    i18n.set_language("lt")
    assert i18n.money(1234.56, "EUR") == "1\xa0234,56\xa0€"
    assert i18n.number(1234567) == "1\xa0234\xa0567"
    i18n.set_language("fa")
    assert i18n.number(1234.5, 2) == "۱٬۲۳۴٫۵۰"
    assert i18n.percent(0.25) == "۲۵%"
    i18n.set_language("en")
    assert i18n.money(1234.5, "USD") == "$1,234.50"
    assert i18n.format_date(date(2026, 1, 31)) == "2026-01-31"


def test_search_treats_arabic_and_persian_forms_as_one():
    assert search.normalise("علي") == search.normalise("علی") == "علی"
    assert search.normalise("كتاب") == "کتاب"
    assert search.normalise("می\u200cخواهم") == "میخواهم"
    assert search.normalise("۱۲۳٤٥") == "12345"
    assert search.needs_normalising("علی") and search.needs_normalising("0912")
    assert not search.needs_normalising("Smith")


def test_untranslated_language_falls_back_to_english():
    i18n.set_language("xx")
    assert i18n.language() == "en"
    assert i18n.gettext("Sign in") == "Sign in"


def test_months_of_the_users_calendar_are_grouped_in_sql(db):
    from crm import calendar

    days = [date(2025, 3, 20), date(2025, 3, 21), date(2025, 4, 20), date(2025, 4, 21),
            date(2026, 11, 30), date(2026, 12, 1)]
    with db.transaction() as cur:
        cur.execute("CREATE TABLE sample_days (d DATE)")
        for day in days:
            cur.execute("INSERT INTO sample_days VALUES ($d)", {"d": day})

    def grouped(grain, lang):
        key, join = calendar.period("t.d", grain, lang)
        found = db.query(f"SELECT {key} AS k, count(*) AS n FROM sample_days t{join}"
                         " GROUP BY k ORDER BY k")
        return {calendar.label(r["k"], grain, lang): r["n"] for r in found}

    def expected(keyer):
        out = {}
        for day in days:
            out[keyer(day)] = out.get(keyer(day), 0) + 1
        return out

    i18n.set_language("fa")
    assert grouped("month", "fa") == expected(
        lambda d: i18n.month_name(*i18n.to_jalali(d)[:2]))
    assert grouped("month", "fa")["فروردین ۱۴۰۴"] == 2  # 21 Mar and 20 Apr 2025
    assert grouped("quarter", "fa") == expected(
        lambda d: calendar.label(i18n.to_jalali(d)[0] * 10 + (i18n.to_jalali(d)[1] - 1) // 3
                                 + 1, "quarter", "fa"))
    i18n.set_language("en")
    assert grouped("month", "en") == expected(lambda d: f"{d.year:04d}-{d.month:02d}")
    assert grouped("quarter", "en")["Q1 2025"] == 2
    i18n.set_language("lt")
    assert grouped("quarter", "lt")[calendar.label(20251, "quarter", "lt")] == 2


def test_persian_search_and_duplicates_ignore_letter_forms(db, team):
    from crm import conversion, customers, leads, records

    admin = team["admin"]
    arabic = leads.create_lead(db, admin, {"first_name": "علي", "last_name": "كريمي",
                                           "company": "شركت نمونه"})
    leads.create_lead(db, admin, {"first_name": "John", "last_name": "Smith"})
    for typed in ("علی", "کریمی", "شرکت", "علي"):
        found = records.list_records(db, admin, leads.LEADS, records.Query(search=typed))
        assert [r["id"] for r in found.rows] == [arabic], typed
    customers.create_customer(db, admin, {"name": "شرکت نمونه"})
    lead = records.get(db, admin, leads.LEADS, arabic)
    [candidate] = conversion.duplicate_candidates(db, admin, lead)
    assert candidate["name"] == "شرکت نمونه" and candidate["score"] == 1.0


def test_lists_sort_by_the_languages_alphabet(db, team):
    from crm import leads, records

    for name in ("Zita", "Ąžuolas", "Bronė", "Aldona"):
        leads.create_lead(db, team["admin"], {"last_name": name})

    def order(language):
        page = records.list_records(db, team["admin"], leads.LEADS, records.Query(
            sort="last_name", descending=False, language=language))
        return [r["last_name"] for r in page.rows]

    assert order("lt") == ["Aldona", "Ąžuolas", "Bronė", "Zita"]
    assert order("en") == ["Aldona", "Bronė", "Zita", "Ąžuolas"]  # byte order


def test_the_default_pipeline_is_named_in_the_first_admins_language(db, team):
    from crm import pipelines

    pipelines.name_defaults_in(db, "lt")
    with i18n.using("lt"):
        won = i18n.gettext("Won")
    names = [s["name"] for s in pipelines.stages_of(db, pipelines.default_pipeline_id(db))]
    assert won in names and "Won" not in names
    pipelines.name_defaults_in(db, "fa")  # renamed ones are the admin's: left alone
    assert [s["name"] for s in pipelines.stages_of(db, pipelines.default_pipeline_id(db))] \
        == names
    i18n.set_language("fa")
    created = pipelines.create_pipeline(db, team["admin"], "فروش")
    assert pipelines.stages_of(db, created)[0]["name"] == i18n.gettext("Prospecting")


def test_export_headers_are_stable_names_or_labels_in_the_users_language(db, team):
    import csv
    import io

    from crm import leads, records

    leads.create_lead(db, team["admin"], {"last_name": "Kazlauskas"})

    def header(**options):
        data = records.export_csv(db, team["admin"], leads.LEADS, records.Query(), **options)
        return next(csv.reader(io.StringIO(data.decode("utf-8-sig"))))

    i18n.set_language("lt")
    assert "last_name" in header()  # what an import reads back, in any language
    translated = header(translated_headers=True)
    assert i18n.gettext("Last name") in translated and "last_name" not in translated
    assert i18n.gettext("Last name") != "Last name"


def test_charts_mirror_and_speak_persian():
    import plotly.graph_objects as go

    from crm.ui.charts import localize

    i18n.set_language("fa")
    fig = localize(go.Figure(go.Bar(x=["a", "b"], y=[12, 84])))
    assert fig.layout.xaxis.autorange == "reversed" and fig.layout.yaxis.side == "right"
    assert list(fig.layout.yaxis.ticktext) == ["۰", "۲۰", "۴۰", "۶۰", "۸۰", "۱۰۰"]
    i18n.set_language("en")
    plain = localize(go.Figure(go.Bar(x=["a"], y=[3])))
    assert plain.layout.xaxis.autorange is None and plain.layout.yaxis.ticktext is None


def test_search_regex_accepts_every_form_and_nothing_else():
    import duckdb

    con = duckdb.connect()

    def found(text, query):
        return con.execute("SELECT regexp_matches($t, $r)",
                           {"t": text, "r": search.regex(query)}).fetchone()[0]

    assert found("علي كريمي", "علی کریمی") and found("على", "علي")
    assert found("می\u200cخواهم", "میخواهم") and found("شرکت ۲۰۰۰", "2000")
    assert found("Smith (UK)", "smith (uk") and found("50% off", "50%")
    assert not found("a.b", "a*b") and not found("عمر", "علی")
