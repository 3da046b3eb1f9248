"""Settings every test process needs before any handler module is imported.

Powertools reads its Metrics namespace when a module creates its Metrics object (at import);
on Lambda the template's environment provides it (parameter MetricsNamespace).
"""

import os

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "tgrelay")
