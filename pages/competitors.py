from crm.market import COMPETITORS
from crm.ui.guard import require_user
from crm.ui.tables import list_page

user = require_user("rep")
list_page(COMPETITORS, user, record_page="pages/competitor.py")
