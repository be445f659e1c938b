from crm.i18n import gettext as _
from crm.market import COMPETITORS
from crm.ui.guard import require_user
from crm.ui.market import competitor_deals, competitor_prices, competitor_shares
from crm.ui.record import record_page

user = require_user("rep")
record_page(COMPETITORS, user, list_page="pages/competitors.py",
            tabs={_("Market share"): lambda c: competitor_shares(user, c),
                  _("Deals"): lambda c: competitor_deals(user, c),
                  _("Prices"): lambda c: competitor_prices(user, c)})
