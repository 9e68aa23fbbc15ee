"""Which forwards a profile (or some of its groups) stands for, with the command line's
defaults filled in: what `portfwd up` runs and `portfwd export PROFILE` writes."""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from portfwd.engine.model import ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.filecheck import check_private
from portfwd.kube.targets import printable, quote
from portfwd.store.profiles import default_profiles_file, load_profiles
from portfwd.store.profiles_model import ProfileNamespace, ProfilesFile


class UpUsageError(PortfwdError):
    """Nothing was started: the profile or a group does not exist, or the profile has
    problems. Every line of `lines` is printed; the exit code is 2."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[0])
        self.lines = lines


@dataclass(frozen=True)
class Selected:
    profile: str
    specs: list[ForwardSpec]  # one per port; spec.name is the name lines are prefixed with
    # its `namespaces:` entries, defaults applied (none when groups are named: groups hold
    # forwards)
    namespaces: list[ProfileNamespace] = field(default_factory=list)


def _known(names: Sequence[str], what: str, typed: str = "") -> str:
    """The known names, after a did-you-mean for a close one (`up dmeo`)."""
    if not names:
        return f"there are no {what}"
    close = difflib.get_close_matches(typed, names, n=1, cutoff=0.6) if typed else []
    guess = f"did you mean {quote(close[0])}? " if close else ""
    return guess + f"{what}: " + ", ".join(quote(n) for n in names)


def select(
    path: Path | None,
    profile: str,
    groups: Sequence[str],
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    protocol: str = "auto",
) -> Selected:
    """The specs `portfwd up PROFILE GROUP...` runs. UpUsageError (exit 2) for an unknown
    profile or group, or problems in the profile; PortfwdError for a file refused."""
    path = path or default_profiles_file()
    loaded: ProfilesFile = load_profiles(path)
    if profile not in loaded.names:
        general = [str(p) for p in loaded.problems if p.profile is None]
        if not loaded.existed:
            raise UpUsageError(
                [f"no profiles file {printable(str(path))}; `portfwd profile example` shows one"]
            )
        raise UpUsageError(
            [
                f"no profile {quote(profile)} in {loaded.path}; "
                + _known(loaded.names, "profiles", profile),
                *general,
            ]
        )
    if profile in loaded.broken:
        mine = [str(p) for p in loaded.problems if p.profile == profile]
        raise UpUsageError([*mine, f"profile {quote(profile)} was not started: fix the above"])
    prof = loaded.profiles[profile]
    unknown = [g for g in groups if g not in prof.groups]
    if unknown:
        raise UpUsageError(
            [
                f"profile {quote(profile)} has no group {quote(unknown[0])}; "
                + _known(list(prof.groups), "groups", unknown[0])
            ]
        )
    pairs = prof.specs(groups, kubeconfig=kubeconfig, context=context, namespace=namespace)
    spaces = [] if groups else prof.namespace_runs(kubeconfig=kubeconfig, context=context)
    named_kubeconfigs = [fwd.kubeconfig or prof.defaults.kubeconfig for fwd, _ in pairs]
    named_kubeconfigs += [n.kubeconfig for n in prof.namespaces]
    for named in named_kubeconfigs:
        if named:
            check_private(
                Path(os.path.abspath(os.path.expanduser(named))),
                what="kubeconfig",
                named_by=f"profile {quote(profile)} in {loaded.path}",
            )
    specs = [replace(spec, protocol=protocol) for _, spec in pairs]
    return Selected(profile=profile, specs=specs, namespaces=spaces)
