from crm.products import PRODUCTS
from crm.ui.guard import require_user
from crm.ui.record import record_page

user = require_user("rep")
record_page(PRODUCTS, user, list_page="pages/products.py")
