# The Celery app is loaded by deia.apps.DeiaConfig.ready() in every process that runs the
# full settings, and found by `celery -A deia` as deia.celery.app; bot runners skip it.
