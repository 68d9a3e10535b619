"""Fixtures of the umbrella's tests: the HTTP gateway back end and both gateways (gateway_fixtures.py)."""

from tests.api.gateway_fixtures import backend, pyrite_gateway, pyro5_gateway  # noqa: F401
