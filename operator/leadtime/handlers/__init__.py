"""kopf handlers for ModelDeployment; importing this package registers them (`kopf run -m leadtime.handlers`)."""

from leadtime.handlers import controller as controller  # noqa: F401  (registers the handlers)
