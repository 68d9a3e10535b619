"""Tools that ship with the umbrella distribution ``pyrite`` (Pyro5's ``Pyro5.utils``).

* ``echoserver``: a test server with an echo object (``pyrite-echoserver``)
* ``httpgateway``: name-server objects over HTTP + JSON, a WSGI app (``pyrite-httpgateway``)
"""
