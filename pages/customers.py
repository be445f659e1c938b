from crm.customers import CUSTOMERS
from crm.ui.guard import require_user
from crm.ui.tables import list_page

user = require_user("rep")
list_page(CUSTOMERS, user, record_page="pages/customer.py")
