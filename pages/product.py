from crm.i18n import gettext as _
from crm.products import PRODUCTS
from crm.ui.guard import require_user
from crm.ui.market import product_costs
from crm.ui.record import record_page

user = require_user("rep")
record_page(PRODUCTS, user, list_page="pages/products.py",
            tabs={_("Cost and margin per quarter"): lambda p: product_costs(user, p)})
