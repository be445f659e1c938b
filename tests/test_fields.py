from datetime import date, timedelta
from decimal import Decimal

import pytest

from crm.customers import CUSTOMERS
from crm.fields import Field, ValidationError, convert, validate
from crm.leads import LEADS


def errors_of(specs, values):
    with pytest.raises(ValidationError) as exc:
        validate(specs, values)
    return exc.value.errors


def test_valid_lead_is_cleaned():
    clean = validate(LEADS.fields, {"last_name": "  Smith ", "email": "Ann@Example.COM",
                                    "estimated_value": "1,250.5", "status": "Qualified",
                                    "phone": "+98 ۹۱۲ ۱۲۳ ۴۵۶۷"})
    assert clean["last_name"] == "Smith"
    assert clean["email"] == "ann@example.com"
    assert clean["estimated_value"] == Decimal("1250.50")
    assert clean["status"] == "qualified"
    assert clean["phone"] == "+98 912 123 4567"
    assert clean["consent"] is False


def test_each_bad_value_gets_its_own_message():
    errors = errors_of(LEADS.fields, {"last_name": "", "email": "ann@", "estimated_value": -1,
                                      "status": "won", "first_name": "x" * 201})
    assert errors["last_name"] == "Last name is required"
    assert "not a valid email" in errors["email"]
    assert "cannot be less than 0" in errors["estimated_value"]
    assert "must be one of" in errors["status"]
    assert "too long (201 characters; at most 200)" in errors["first_name"]


def test_unknown_field_is_refused():
    assert "not a field" in errors_of(LEADS.fields, {"last_name": "A", "salary": 1})["salary"]


@pytest.mark.parametrize("raw", ["abc", "NaN", "Infinity"])
def test_money_must_be_a_finite_number(raw):
    spec = Field("amount", "Amount", "money")
    with pytest.raises(ValueError, match="must be a number"):
        convert(spec, raw)


def test_dates_and_booleans_from_csv_text():
    assert convert(Field("d", "D", "date"), "2026-01-31") == date(2026, 1, 31)
    with pytest.raises(ValueError, match="date like"):
        convert(Field("d", "D", "date"), "31/01/2026")
    assert convert(Field("b", "B", "bool"), "yes") is True
    assert convert(Field("b", "B", "bool"), "") is False


def test_birthday_is_kept_only_for_individuals():
    company = validate(CUSTOMERS.fields, {"name": "Acme", "kind": "company",
                                          "birthday": date(1980, 1, 1)})
    person = validate(CUSTOMERS.fields, {"name": "Ann", "kind": "individual",
                                         "birthday": date(1980, 1, 1)})
    assert company["birthday"] is None
    assert person["birthday"] == date(1980, 1, 1)


def test_future_dates_are_refused_by_entity_checks():
    tomorrow = date.today() + timedelta(days=1)
    clean = validate(CUSTOMERS.fields, {"name": "Ann", "kind": "individual", "birthday": tomorrow})
    assert "cannot be in the future" in CUSTOMERS.check(clean)["birthday"]
