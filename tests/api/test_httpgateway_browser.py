"""The gateway's web page in a real headless chromium (Debian's), driven over DevTools: a person
picks a method, types its parameters, presses Call, and reads the JSON result on the page."""

from __future__ import annotations

import json
import time

import pytest

from tests.api.devtools import Browser, find_chromium
from tests.api.gateway_fixtures import KEY

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (Debian: apt-get install chromium; .ci/run installs it)"
)


def _response_text(browser: Browser, timeout: float = 20.0) -> str:
    """What the page shows under Response once the call has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = browser.evaluate("document.getElementById('pyro_response').textContent")
        if text and text != "...":
            return str(text)
        time.sleep(0.05)
    raise AssertionError("the page showed no response")


@pytest.fixture
def browser(tmp_path):
    assert CHROMIUM is not None
    b = Browser(CHROMIUM, tmp_path / "profile")
    try:
        yield b
    finally:
        b.close()
    assert b.proc.poll() is not None


def test_a_person_calls_a_method_on_the_page(pyrite_gateway, browser):
    browser.call("Page.enable")
    browser.call("Page.navigate", url=f"http://127.0.0.1:{pyrite_gateway.port}/")  # redirects to /pyro/
    browser.wait_event("Page.loadEventFired")
    assert browser.evaluate("location.pathname") == "/pyro/"
    assert browser.evaluate("document.title") == "pyrite HTTP gateway"
    listed = browser.evaluate("[...document.querySelectorAll('td')].map(td => td.textContent)")
    assert "http.service" in listed and "private.service" not in listed

    # press the 'echo' button of http.service: it fills in the form
    browser.click('button.method[data-name="http.service"][data-method="echo"]')
    assert browser.evaluate("document.getElementById('call_name').value") == "http.service"
    assert browser.evaluate("document.getElementById('call_method').value") == "echo"
    browser.type_into("#call_params", json.dumps({"message": "hello from chromium"}))
    browser.type_into("#call_key", KEY)
    browser.click("#call_button")
    shown = _response_text(browser)
    assert json.loads(shown) == "hello from chromium"
    assert browser.evaluate("document.getElementById('pyro_call').textContent").startswith("POST http.service/echo")

    # a call with typed JSON arguments, then one that fails: the error is shown with its status
    browser.evaluate("document.getElementById('pyro_response').textContent = ''")
    browser.type_into("#call_method", "add")
    browser.type_into("#call_params", '{"a": 40, "b": 2}')
    browser.click("#call_button")
    assert json.loads(_response_text(browser)) == 42

    browser.evaluate("document.getElementById('pyro_response').textContent = ''")
    browser.type_into("#call_method", "error")
    browser.type_into("#call_params", "{}")
    browser.click("#call_button")
    shown = _response_text(browser)
    status, _, body = shown.partition("\n")
    assert status == "HTTP 500"
    error = json.loads(body)
    assert error["__class__"] == "builtins.ValueError" and "on purpose" in error["args"][0]

    # an attribute button works the same way
    browser.evaluate("document.getElementById('pyro_response').textContent = ''")
    browser.click('button.attr[data-name="http.service"][data-method="answer"]')
    browser.click("#call_button")
    assert json.loads(_response_text(browser)) == 42
