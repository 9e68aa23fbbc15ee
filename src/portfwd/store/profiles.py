"""The profiles file: `profiles.yaml` in the config dir (or `--profiles FILE`), read and saved.

People edit it by hand and keep it in git, so portfwd's writes are round trips (ruamel.yaml):
a save keeps the user's comments, key order, quoting and indentation; it only changes the
profile it saves (an existing one is updated in place, forward by forward). Writes are atomic
with mode 0600 (`store.state.write_atomic`), and a file that does not parse is never
overwritten: the save is refused with the place of the syntax error.

Reading is bounded like the session file's: at most :data:`PROFILES_MAX_BYTES`, and the YAML
goes through portfwd's hardened loader first (`portfwd.safeyaml`: node and alias limits)
before ruamel builds its tree. A file someone else could change is refused
(`portfwd.filecheck`): it names kubeconfigs, so exec plugins that run as the user.

What is in it is checked by `profiles_check` (every problem with file:line:column).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from portfwd.configdir import config_dir
from portfwd.engine.probe_spec import DEFAULT_PROBE_INTERVAL
from portfwd.errors import PortfwdError
from portfwd.filecheck import FileTooLarge, NotRegularFile, check_private, irregular, read_capped
from portfwd.humanize import duration_text
from portfwd.kube.targets import printable
from portfwd.safeyaml import YamlLimitError, load_yaml
from portfwd.store.profiles_check import SCHEMA_VERSION, Checker, KnownContexts
from portfwd.store.profiles_model import (
    Profile,
    ProfileForward,
    ProfileNamespace,
    ProfileProblem,
    ProfilesFile,
)
from portfwd.store.state import write_atomic

__all__ = [
    "PROFILES_FILE_NAME",
    "PROFILES_MAX_BYTES",
    "ProfilesFileError",
    "default_profiles_file",
    "load_profiles",
    "parse_profiles",
    "profile_to_node",
    "read_profiles_text",
    "save_profile",
    "shown_path",
]

PROFILES_FILE_NAME = "profiles.yaml"
# A forward takes ~75 bytes in block style: room for ~1,700 forwards. ruamel.yaml is pure
# Python (measured ~45 us a byte on a loaded 2-vCPU machine: a 50-forward, 3.7 KB file reads
# in 0.16 s, a file at this cap in ~6 s); the cap keeps a mistaken file from hanging a start.
PROFILES_MAX_BYTES = 128 << 10
PROFILES_MAX_NODES = 50_000

NEW_FILE_HEADER = (
    "# portfwd profiles: saved sets of forwards (`portfwd profile example` shows every key).\n"
)


class ProfilesFileError(PortfwdError):
    """The file as a whole cannot be used (unreadable, refused, over a limit)."""


def default_profiles_file() -> Path:
    return config_dir() / PROFILES_FILE_NAME


def _round_trip() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never fold a user's long line
    return y


def _mark_problem(shown: str, exc: Any) -> ProfileProblem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = getattr(exc, "problem", None) or "not valid YAML"
    context = getattr(exc, "context", None)
    text = f"{context}, {problem}" if context and "duplicate" not in str(context) else problem
    if type(exc).__name__ == "DuplicateKeyError":
        key = re.search(r'duplicate key (".*?"|\S+)', str(problem))
        text = f"duplicate key {key.group(1) if key else ''}; each key may appear once"
    return ProfileProblem(shown, line, col, f"YAML: {printable(str(text))}")


def parse_profiles(text: str, shown: str) -> tuple[Any, list[ProfileProblem]]:
    """The round-trip tree of `text`, or None and the syntax (or limit) problem."""
    try:
        load_yaml(text, max_nodes=PROFILES_MAX_NODES)  # the limits, before ruamel walks it
    except YamlLimitError as exc:
        return None, [ProfileProblem(shown, 1, 1, f"not read: {exc}")]
    except yaml.YAMLError as exc:
        return None, [_mark_problem(shown, exc)]
    try:
        return _round_trip().load(text), []
    except MarkedYAMLError as exc:
        return None, [_mark_problem(shown, exc)]
    except YAMLError as exc:
        return None, [ProfileProblem(shown, 1, 1, f"YAML: {printable(str(exc))}")]


def read_profiles_text(path: Path) -> str | None:
    """The file's text, None when there is none. ProfilesFileError for a file portfwd will
    not read (with the fix)."""
    shown = printable(str(path))
    problem = irregular(path)
    if problem:
        raise ProfilesFileError(f"profiles file {shown} {problem}; use a regular file")
    check_private(path, what="profiles file")
    try:
        data = read_capped(path, PROFILES_MAX_BYTES, regular_only=True)
    except FileNotFoundError:
        return None
    except (NotRegularFile, FileTooLarge) as exc:
        raise ProfilesFileError(f"profiles file {shown} {exc.problem}") from None
    except OSError as exc:
        raise ProfilesFileError(
            f"cannot read profiles file {shown}: {exc.strerror or exc}"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProfilesFileError(
            f"profiles file {shown} is not UTF-8 text (byte {exc.start}); fix or remove it"
        ) from None


def shown_path(path: Path) -> str:
    """The path as messages show it: as given, relative when under the working directory."""
    text = str(path)
    try:
        rel = os.path.relpath(path)
        if not rel.startswith(".."):
            text = rel
    except ValueError:
        pass
    return printable(text)


def load_profiles(path: Path, *, known_contexts: KnownContexts | None = None) -> ProfilesFile:
    """Every profile that checks out, and every problem (file:line:column). A missing file is
    an empty one (`existed` False). Raises ProfilesFileError for a file portfwd will not read."""
    shown = shown_path(path)
    text = read_profiles_text(path)
    if text is None:
        return ProfilesFile(path=shown, existed=False)
    doc, problems = parse_profiles(text, shown)
    if problems:
        return ProfilesFile(path=shown, problems=problems)
    return Checker(shown, known_contexts).check_file(doc)


def load_text(
    text: str, shown: str, *, known_contexts: KnownContexts | None = None
) -> ProfilesFile:
    """As load_profiles, from text (the example, an edited copy)."""
    doc, problems = parse_profiles(text, shown)
    if problems:
        return ProfilesFile(path=shown, problems=problems)
    return Checker(shown, known_contexts).check_file(doc)


# -- writing ----------------------------------------------------------------------------------


def _flow(items: Sequence[str], *, quoted: bool = False) -> CommentedSeq:
    seq = CommentedSeq([DoubleQuotedScalarString(i) if quoted else i for i in items])
    seq.fa.set_flow_style()
    return seq


def _address(value: tuple[str, ...]) -> Any:
    return DoubleQuotedScalarString(value[0]) if len(value) == 1 else _flow(value, quoted=True)


def forward_to_node(fwd: ProfileForward) -> CommentedMap:
    node = CommentedMap()
    node["name"] = fwd.name
    node["target"] = fwd.target
    node["ports"] = _flow(fwd.ports, quoted=True)
    for key in ("context", "namespace", "kubeconfig"):
        value = getattr(fwd, key)
        if value is not None:
            node[key] = value
    if fwd.address is not None:
        node["address"] = _address(fwd.address)
    if not fwd.reconnect:
        node["reconnect"] = False
    if fwd.spread:
        node["spread"] = True
    if fwd.probe:
        node["probe"] = fwd.probe
    if fwd.probe_interval != DEFAULT_PROBE_INTERVAL:
        node["probe_interval"] = f"{fwd.probe_interval:g}s"
    if fwd.lazy:
        node["lazy"] = True
    for key in ("idle_after", "idle_stop"):
        seconds = getattr(fwd, key)
        if seconds is not None:
            node[key] = duration_text(seconds)
    if fwd.http_log:
        node["http_log"] = True
    return node


def namespace_to_node(entry: ProfileNamespace) -> CommentedMap:
    node = CommentedMap()
    for key in ("namespace", "context", "kubeconfig", "selector"):
        value = getattr(entry, key)
        if value is not None:
            node[key] = value
    if entry.exclude:
        node["exclude"] = _flow(entry.exclude)
    return node


def profile_to_node(profile: Profile) -> CommentedMap:
    """The profile as the file writes it (only what is set; ports quoted, lists in flow)."""
    node = CommentedMap()
    if profile.description:
        node["description"] = profile.description
    d = profile.defaults
    defaults = CommentedMap()
    for key in ("kubeconfig", "context", "namespace"):
        value = getattr(d, key)
        if value is not None:
            defaults[key] = value
    if d.address is not None:
        defaults["address"] = _address(d.address)
    if defaults:
        node["defaults"] = defaults
    node["forwards"] = CommentedSeq([forward_to_node(f) for f in profile.forwards])
    if profile.namespaces:
        node["namespaces"] = CommentedSeq([namespace_to_node(n) for n in profile.namespaces])
    if profile.groups:
        groups = CommentedMap()
        for name, members in profile.groups.items():
            groups[name] = _flow(members)
        node["groups"] = groups
    return node


_IMPLIED = {"reconnect": True}  # what a key left out means: `reconnect: true` stays written


def _same_scalar(old: Any, new: Any) -> bool:
    """`ports: "8080:80"` (or `ports: 80`) and the written `["8080:80"]` mean the same."""
    if isinstance(old, dict | list) or old is None:
        return False
    if isinstance(new, list) and len(new) == 1:
        new = new[0]
    if isinstance(new, dict | list) or isinstance(old, bool) != isinstance(new, bool):
        return False
    return bool(old == new or str(old) == str(new))


def _merge(old: Any, new: Any) -> Any:
    """`new` written into `old` where both are mappings (keeping the old keys' order and
    comments), forwards matched by name; anything else is replaced."""
    if _same_scalar(old, new):
        return old
    if isinstance(old, CommentedMap) and isinstance(new, CommentedMap):
        for key in [k for k in old if k not in new]:
            if _IMPLIED.get(key, ...) != old[key]:
                del old[key]
        for key, value in new.items():
            if key in old:
                old[key] = _merge(old[key], value)
            else:
                old[key] = value
        return old
    if isinstance(old, CommentedSeq) and isinstance(new, CommentedSeq):
        by_name = {  # forwards; namespaces entries have no name
            item["name"]: item for item in old if isinstance(item, CommentedMap) and "name" in item
        }
        if by_name and all(isinstance(i, CommentedMap) and "name" in i for i in new):
            merged = [_merge(by_name[i["name"]], i) if i["name"] in by_name else i for i in new]
            if [m.get("name") for m in merged] == [i.get("name") for i in old]:
                old[:] = merged  # same forwards, same order: the list keeps its comments
                return old
            seq = CommentedSeq(merged)
            return seq
        if list(old) == list(new):
            return old
    return new


def guess_layout(text: str) -> tuple[int, int, int]:
    """The file's block indentation as ruamel's (mapping, sequence, offset): how far a
    nested mapping is indented, and a list's dash and its items' text under their key
    (default 2, 4, 2: `  - name: x`)."""
    mapping = offset = None
    pad = 2  # from a list's dash to its item's text
    prev: tuple[int, str] | None = None
    for raw in text.splitlines():
        body = raw.split(" #", 1)[0].rstrip()
        stripped = body.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(body) - len(stripped)
        if prev is not None and prev[1].endswith(":") and indent >= prev[0]:
            step = indent - prev[0]
            if stripped.startswith("- ") and offset is None:
                offset = step
                pad = len(stripped) - len(stripped[1:].lstrip())
            elif step > 0 and mapping is None:
                mapping = step
        if mapping is not None and offset is not None:
            break
        prev = (indent, stripped[2:] if stripped.startswith("- ") else stripped)
    mapping = mapping or 2
    offset = 2 if offset is None else offset
    return mapping, offset + pad, offset


def _dump(y: YAML, doc: Any) -> str:
    buf = io.StringIO()
    y.dump(doc, buf)
    return buf.getvalue()


def save_profile(path: Path, profile: Profile) -> bool:
    """Write `profile` into the file (added at the end, or the one of that name updated in
    place); every other line of the file stays as it was. Returns True if it was new.

    ProfilesFileError when the file cannot be read or does not parse: it is left alone."""
    shown = shown_path(path)
    text = read_profiles_text(path)
    if text is not None and text.strip():
        doc, problems = parse_profiles(text, shown)
        if problems:
            raise ProfilesFileError(
                f"{problems[0]}; the file was not changed (fix it, then save again)"
            )
    else:
        doc = None
    y = _round_trip()
    mapping, sequence, offset = guess_layout(text or "")
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    lead = ""  # a file of comments only: they stay, above what is written
    if doc is None:
        doc = CommentedMap()
        doc["version"] = SCHEMA_VERSION
        if text and text.strip():
            lead = text.rstrip("\n") + "\n"
        else:
            doc.yaml_set_start_comment(NEW_FILE_HEADER.removeprefix("# ").rstrip("\n"))
    if not isinstance(doc, CommentedMap):
        raise ProfilesFileError(
            f"{shown}:1:1: the file must be a mapping with `profiles:`; it was not changed"
        )
    profiles = doc.get("profiles")
    if profiles is None:
        profiles = doc["profiles"] = CommentedMap()
    if not isinstance(profiles, CommentedMap):
        raise ProfilesFileError(
            f"{shown}: `profiles:` must be a mapping of profile names; the file was not changed"
        )
    node = profile_to_node(profile)
    new = profile.name not in profiles
    profiles[profile.name] = node if new else _merge(profiles[profile.name], node)
    out = lead + _dump(y, doc)
    check = load_text(out, shown)  # what portfwd writes, it reads back
    mine = [p for p in check.problems if p.profile == profile.name]
    if mine:
        raise ProfilesFileError(f"{mine[0]}; profile {profile.name!r} was not saved")
    if profile.name not in check.profiles or check.profiles[profile.name] != profile:
        raise ProfilesFileError(
            f"{shown}: saving profile {profile.name!r} would not read back as saved "
            "(a portfwd bug); the file was not changed"
        )
    write_atomic(path, out)
    return new
