"""Run the SAM template in-process: moto for AWS, a stdlib HTTP server for the HTTP API.

Nothing here ships behaviour to Lambda; it stands in for `sam local start-api` where Docker is absent.
"""
