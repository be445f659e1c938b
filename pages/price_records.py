from crm import market
from crm.market import PRICE_RECORDS
from crm.products import PRODUCTS
from crm import records
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.tables import list_page

user = require_user("rep")
db = get_db()
list_page(PRICE_RECORDS, user, record_page="pages/price_record.py",
          choices={"product_id": records.choices(db, user, PRODUCTS),
                   "competitor_id": market.competitor_choices(db, user)})
