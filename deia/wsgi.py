from __future__ import annotations

from django.core.wsgi import get_wsgi_application

from deia.config import import_settings_or_exit

import_settings_or_exit()
application = get_wsgi_application()
