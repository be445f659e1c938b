from datetime import date

from crm import service
from crm.ui.guard import require_user
from crm.ui.record import record_page
from crm.ui.service import new_values, service_choices

user = require_user("rep")
record_page(service.SURVEYS, user, list_page="pages/surveys.py",
            choices=lambda row: service_choices(user, row),
            new_values=new_values(user, {"answered_on": date.today()}))
