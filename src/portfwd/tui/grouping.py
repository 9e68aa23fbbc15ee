"""Which profile (and groups) a dashboard forward belongs to: the Group column.

A forward is a profile's when it is the same forward (`engine/identity.py`: context,
namespace, target, remote port, and the local port where both fix one), whatever its name: a
name is a label, and two profiles may both call different targets `api`. Pure: the profiles
file is read elsewhere, in a worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from portfwd.engine.identity import is_same_spec
from portfwd.engine.model import ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.store.profiles_model import ProfilesFile


def is_profile_forward(
    engine: ForwardSpec,
    profile: ForwardSpec,
    *,
    context: str | None = None,
    namespace: str | None = None,
) -> bool:
    """`engine` (a dashboard forward's spec) is the profile forward `profile`; `context`
    and `namespace`: the dashboard's, which a forward that names none runs in."""
    return is_same_spec(profile, engine, context=context, namespace=namespace)


@dataclass(frozen=True)
class GroupIndex:
    """The profile forwards of a profiles file, each with its label: `PROFILE` or
    `PROFILE/GROUP,GROUP` (the groups it is in)."""

    entries: tuple[tuple[str, ForwardSpec], ...] = ()
    context: str | None = None  # the dashboard's defaults, as the entries were made with
    namespace: str | None = None

    def label(self, spec: ForwardSpec) -> str:
        labels = dict.fromkeys(
            lab
            for lab, p in self.entries
            if is_profile_forward(spec, p, context=self.context, namespace=self.namespace)
        )
        return " ".join(labels)


def group_index(
    loaded: ProfilesFile,
    *,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> GroupIndex:
    """The index of every good profile, with the dashboard's defaults filled in as a start
    from the profiles view would."""
    entries: list[tuple[str, ForwardSpec]] = []
    for profile in loaded.profiles.values():
        try:
            pairs = profile.specs((), kubeconfig=kubeconfig, context=context, namespace=namespace)
        except (PortfwdError, KeyError):
            continue
        for fwd, spec in pairs:
            groups = [g for g, members in profile.groups.items() if fwd.name in members]
            label = f"{profile.name}/{','.join(groups)}" if groups else profile.name
            entries.append((label, spec))
    return GroupIndex(tuple(entries), context=context, namespace=namespace)
