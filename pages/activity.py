from crm import activities
from crm.ui.guard import require_user
from crm.ui.record import record_page, related_choices

user = require_user("rep")
record_page(activities.ACTIVITIES, user, list_page="pages/activities.py",
            choices=lambda row: related_choices(user, row))
