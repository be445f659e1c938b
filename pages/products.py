from crm import records
from crm.products import PRODUCTS
from crm.ui.guard import require_user
from crm.ui.tables import list_page

user = require_user("rep")
list_page(PRODUCTS, user, record_page="pages/product.py",
          can_create=records.may_write(user, PRODUCTS))
