"""The PAC file of `portfwd proxy --pac`: only cluster names go to the proxy.

Hand-written: PAC libraries on PyPI (pypac, pacparser) *read* PAC files; writing one is a
single JavaScript function. A name goes to the proxy when it ends in `.svc`,
`.svc.cluster.local` or `.svc.CONTEXT` (a served context), or when it is `SVC.NS` /
`POD.SVC.NS` for a namespace that exists in a served cluster (listed when the file is asked
for); everything else is DIRECT, so the proxy never even sees it.
"""

from __future__ import annotations

import json
import re

from portfwd.reach.names import context_label

_LABEL = "[a-z0-9]([a-z0-9-]*[a-z0-9])?"


def pac_file(proxy: str, namespaces: list[str], contexts: list[str]) -> str:
    ends = ["cluster\\.local", *(re.escape(context_label(c)) for c in contexts)]
    svc = f"^({_LABEL}\\.){{2,3}}svc(\\.({'|'.join(ends)}))?$"
    short = ""
    if namespaces:
        listed = "|".join(re.escape(n) for n in namespaces)
        short = f"^({_LABEL}\\.){{1,2}}({listed})$"
    return (
        "// portfwd proxy: cluster names through the proxy, everything else direct.\n"
        "function FindProxyForURL(url, host) {\n"
        "  host = host.toLowerCase();\n"
        f"  var svc = new RegExp({json.dumps(svc)});\n"
        f"  var short = {('new RegExp(' + json.dumps(short) + ')') if short else 'null'};\n"
        "  if (svc.test(host) || (short !== null && short.test(host))) {\n"
        f"    return {json.dumps('PROXY ' + proxy)};\n"
        "  }\n"
        '  return "DIRECT";\n'
        "}\n"
    )
