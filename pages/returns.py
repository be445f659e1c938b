from crm.customers import customer_choices
from crm.market import RETURNS
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.tables import list_page

user = require_user("rep")
list_page(RETURNS, user, record_page="pages/return.py",
          choices={"customer_id": customer_choices(get_db(), user)})
