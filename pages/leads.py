from crm.leads import LEADS
from crm.ui.guard import require_user
from crm.ui.tables import list_page

user = require_user("rep")
list_page(LEADS, user, record_page="pages/lead.py")
