from datetime import date

from crm import market, records
from crm.market import PRICE_RECORDS
from crm.products import PRODUCTS
from crm.ui.guard import require_user
from crm.ui.record import record_page
from crm.ui.session import get_db

user = require_user("rep")
db = get_db()


def choices(row: dict | None) -> dict:
    return {"product_id": records.choices(db, user, PRODUCTS),
            "competitor_id": market.competitor_choices(db, user)}


record_page(PRICE_RECORDS, user, list_page="pages/price_records.py", choices=choices,
            new_values={"observed_on": date.today()})
