"""The one logger, tracer and metrics of every function (Powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

# Lead fields are personal data: handlers never log events, bodies or field values.
logger = Logger(service="pingpost")
tracer = Tracer(service="pingpost")
metrics = Metrics(namespace="PingPost", service="pingpost")
