# receivers are imported by AppConfig.ready()
from .integrations import receivers as integration_receivers  # noqa: F401  (GA4, Google Ads, CRM)
from .numbers import receivers as number_receivers  # noqa: F401  (config cache, lease release)
