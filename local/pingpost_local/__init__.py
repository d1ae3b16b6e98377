"""Run the SAM template in-process: moto for AWS, a stdlib HTTP server for the HTTP API.

It stands in for `sam local start-api` where Docker is absent; none of it runs on Lambda.
"""
