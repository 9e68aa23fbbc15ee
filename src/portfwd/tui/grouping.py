"""Which profile (and groups) a dashboard forward belongs to: the Group column.

A forward is a profile's when it has the name the profile gives it (as `portfwd up` and the
profiles view name them), or, unnamed, the same target, ports, context and namespace (the
dashboard it was saved from). Pure: the profiles file is read elsewhere, in a worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from portfwd.engine.model import ForwardSpec
from portfwd.errors import PortfwdError
from portfwd.store.profiles_model import ProfilesFile


def _where(spec: ForwardSpec) -> tuple[object, ...]:
    return (
        spec.target,
        str(spec.remote_port),
        spec.local_port,
        spec.context,
        spec.namespace,
        spec.kubeconfig,
    )


def is_profile_forward(engine: ForwardSpec, profile: ForwardSpec) -> bool:
    """`engine` (a dashboard forward's spec) is the profile forward `profile`."""
    if profile.name and engine.name:
        return engine.name == profile.name
    return not engine.name and _where(engine) == _where(profile)


@dataclass(frozen=True)
class GroupIndex:
    """The profile forwards of a profiles file, each with its label: `PROFILE` or
    `PROFILE/GROUP,GROUP` (the groups it is in)."""

    entries: tuple[tuple[str, ForwardSpec], ...] = ()

    def label(self, spec: ForwardSpec) -> str:
        labels = dict.fromkeys(lab for lab, p in self.entries if is_profile_forward(spec, p))
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
    return GroupIndex(tuple(entries))
