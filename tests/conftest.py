"""Settings every test process needs, as the template's environment gives them on Lambda.

Powertools reads its Metrics namespace when a module creates its Metrics object (at import);
on Lambda the template's environment provides it (parameter MetricsNamespace).
"""

import os

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "tgrelay")
# The webhook's /start and /help answers (template parameters StartText, HelpText).
os.environ.setdefault("START_TEXT", "Start text of the tests.")
os.environ.setdefault("HELP_TEXT", "Help text of the tests.")
