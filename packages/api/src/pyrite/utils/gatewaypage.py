"""The web page ``pyrite.utils.httpgateway`` serves at ``/pyro/``.

``render(...)`` fills the template: the exposed names with their methods and
attributes (a button per method: pressing it fills in the call form), and a
form to call any method with JSON parameters.  The result, or the HTTP error
with its body, appears under "Response".  Everything is escaped; names travel
in ``data-`` attributes, never inside inline script; the page loads nothing
from elsewhere (no images, fonts or scripts from other hosts).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

__all__ = ["render", "ObjectInfo"]

ObjectInfo = tuple[str, Sequence[str], Sequence[str], str]
"""``(name, methods, attributes, error)``: one row of the page (``error`` is "" when metadata came)."""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>pyrite HTTP gateway</title>
<style>
body {{ font-family: sans-serif; margin: 1em 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
th, td {{ border: 1px solid #aab; padding: 4px 8px; text-align: left; vertical-align: top; }}
pre {{ border: 1px solid #aab; padding: 0.6em; white-space: pre-wrap; min-height: 1.2em; }}
button.method, button.attr {{ margin: 1px; }}
label {{ display: inline-block; min-width: 9em; }}
.error {{ color: #a00; }}
</style>
</head>
<body>
<h1>pyrite HTTP gateway</h1>
<p>Call objects registered in the name server at <code>{ns_location}</code> with HTTP and JSON:
<code>GET</code> or <code>POST /pyro/&lt;name&gt;/&lt;method&gt;</code>, parameters in the query string
or as a JSON object in a POST body; <code>/pyro/&lt;name&gt;/$meta</code> lists an object's methods.</p>
<h2>Exposed objects</h2>
<p>Names matching <code>{ns_regex}</code>{limit_note}:</p>
{objects}
<h2>Call a method</h2>
<form id="call_form">
<p><label for="call_name">object name</label> <input id="call_name" size="40" value="{first_name}"></p>
<p><label for="call_method">method</label> <input id="call_method" size="40"></p>
<p><label for="call_params">parameters (JSON)</label> <input id="call_params" size="60" value="{{}}"></p>
<p><label for="call_key">gateway key</label> <input id="call_key" size="20" type="password"></p>
<p><label for="call_oneway">oneway</label> <input id="call_oneway" type="checkbox"></p>
<p><button id="call_button" type="submit">Call</button></p>
</form>
<h2>Request</h2>
<pre id="pyro_call"></pre>
<h2>Response</h2>
<pre id="pyro_response"></pre>
<p>pyrite {version}</p>
<script>
"use strict";
async function pyroCall(name, method, params) {{
    const call = document.getElementById("pyro_call");
    const out = document.getElementById("pyro_response");
    const url = encodeURIComponent(name) + "/" + encodeURIComponent(method);
    const headers = {{"Accept": "application/json", "Content-Type": "application/json"}};
    const key = document.getElementById("call_key").value;
    if (key) headers["X-Pyro-Gateway-Key"] = key;
    if (document.getElementById("call_oneway").checked) headers["X-Pyro-Options"] = "oneway";
    const body = JSON.stringify(params || {{}});
    call.textContent = "POST " + url + "\\n" + body;
    out.textContent = "...";
    out.className = "";
    try {{
        const response = await fetch(url, {{method: "POST", headers: headers, body: body}});
        const text = await response.text();
        if (response.status >= 400) {{
            out.className = "error";
            out.textContent = "HTTP " + response.status + "\\n" + text;
        }} else if (!text) {{
            out.textContent = "HTTP " + response.status + " (no result: oneway call)";
        }} else {{
            out.textContent = JSON.stringify(JSON.parse(text), null, 2);
        }}
    }} catch (err) {{
        out.className = "error";
        out.textContent = "request failed: " + err;
    }}
}}
document.getElementById("call_form").addEventListener("submit", (event) => {{
    event.preventDefault();
    let params;
    try {{
        params = JSON.parse(document.getElementById("call_params").value || "{{}}");
    }} catch (err) {{
        const out = document.getElementById("pyro_response");
        out.className = "error";
        out.textContent = "the parameters are not valid JSON: " + err;
        return;
    }}
    pyroCall(document.getElementById("call_name").value, document.getElementById("call_method").value, params);
}});
for (const button of document.querySelectorAll("button.method, button.attr")) {{
    button.addEventListener("click", () => {{
        document.getElementById("call_name").value = button.dataset.name;
        document.getElementById("call_method").value = button.dataset.method;
    }});
}}
</script>
</body>
</html>
"""


def _buttons(name: str, members: Sequence[str], kind: str) -> str:
    if not members:
        return "-"
    attr_name = html.escape(name, quote=True)
    return " ".join(
        f'<button type="button" class="{kind}" data-name="{attr_name}" data-method="{html.escape(m, quote=True)}">'
        f"{html.escape(m)}</button>"
        for m in sorted(members)
    )


def render(
    objects: Sequence[ObjectInfo], ns_location: str, ns_regex: str, version: str, limited: int | None = None
) -> str:
    """The page as text.  ``limited``: how many names were left out because of the listing limit."""
    if objects:
        rows = ["<table><tr><th>name</th><th>methods</th><th>attributes</th></tr>"]
        for name, methods, attributes, error in objects:
            if error:
                cells = f'<td colspan="2" class="error">no metadata: {html.escape(error)}</td>'
            else:
                cells = f"<td>{_buttons(name, methods, 'method')}</td><td>{_buttons(name, attributes, 'attr')}</td>"
            rows.append(f"<tr><td>{html.escape(name)}</td>{cells}</tr>")
        rows.append("</table>")
        listing = "\n".join(rows)
    else:
        listing = "<p><em>none</em></p>"
    note = f" ({limited} more not shown)" if limited else ""
    return _TEMPLATE.format(
        ns_location=html.escape(ns_location),
        ns_regex=html.escape(ns_regex or "(everything)"),
        limit_note=note,
        objects=listing,
        first_name=html.escape(objects[0][0], quote=True) if objects else "",
        version=html.escape(version),
    )
