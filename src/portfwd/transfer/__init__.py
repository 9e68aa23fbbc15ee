"""Forwards from and to other tools: kubectl lines, kftray JSON, krelay targets, k9s and
kftray annotations; kubectl scripts, kftray JSON and portfwd's YAML list out.

Pure parsers and writers (:mod:`.kubectl_lines`, :mod:`.kftray_json`, :mod:`.krelay`,
:mod:`.annotations`, :mod:`.export`), their results (:mod:`.result`), and the `portfwd import`
/ `portfwd export` commands (:mod:`.commands`).
"""
