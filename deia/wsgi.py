from __future__ import annotations

from django.core.wsgi import get_wsgi_application

from deia.config import import_settings_or_exit, owner_only_files

owner_only_files()
import_settings_or_exit()
application = get_wsgi_application()
