from crm import pipelines
from crm.deals import DEALS
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.tables import list_page

user = require_user("rep")
list_page(DEALS, user, record_page="pages/deal.py",
          choices={"stage_id": pipelines.stage_choices(get_db())})
