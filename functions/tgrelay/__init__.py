"""tgrelay Lambda code: one module per handler plus the small shared pieces."""

import warnings

# Powertools Metrics warns on every invocation that published no metric (a skipped update, a turn
# hand-on): expected here, and noise in CloudWatch Logs. The filter Powertools' Metrics docs give
# ("Suppressing warning messages on empty metrics").
warnings.filterwarnings("ignore", "No application metrics to publish*")
