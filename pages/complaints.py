from crm import service
from crm.ui.guard import require_user
from crm.ui.session import get_db
from crm.ui.tables import list_page

user = require_user("rep")
list_page(service.COMPLAINTS, user, record_page="pages/complaint.py",
          choices={"product_id": service.product_choices(get_db())})
