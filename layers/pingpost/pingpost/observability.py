"""The one logger and metrics of every function (Powertools).

No tracing SDK: with the template's `Tracing: Active`, Lambda itself records each sampled
invocation (its init, its duration, its errors); the X-Ray SDK would add 0.5 s of imports to
every cold start and a subsegment per call that the figures in docs/performance.md do not need.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

# Lead fields are personal data: handlers never log events, bodies or field values.
logger = Logger(service="pingpost")
metrics = Metrics(namespace="PingPost", service="pingpost")
