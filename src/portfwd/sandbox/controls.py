"""What tests, the demo and the HTTP layer ask of a running cluster: delete, patch, list pod
names, read objects, restart a rollout and wait for a condition or a rollout to finish.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

from portfwd.sandbox.manifests import (
    deep_merge,
    template_hash,
)
from portfwd.sandbox.seeding import Seeding
from portfwd.sandbox.store import Obj


class Controls(Seeding):
    """Controls for tests, the demo and the HTTP layer."""

    async def delete_pod(self, ns: str, name: str) -> None:
        if self.store.get("pods", ns, name) is None:
            raise KeyError(f"no pod {ns}/{name}")
        self.terminate_pod(ns, name)

    async def delete_object(self, resource: str, ns: str, name: str) -> None:
        """Delete a pod, service, deployment or statefulset (cascading to its pods)."""
        if self.delete(resource, ns, name) is None:
            raise KeyError(f"no {resource} {ns}/{name}")

    def delete(self, resource: str, ns: str, name: str) -> Obj | None:
        """What DELETE does; returns the object's last state (None: not found)."""
        obj = self.store.get(resource, ns, name)
        if obj is None:
            return None
        if resource == "pods":
            return self.terminate_pod(ns, name)
        if resource not in ("services", "deployments", "statefulsets"):
            raise ValueError(f"cannot delete {resource}")
        task = self._rollouts.pop((resource, ns, name), None)
        if task is not None:
            task.cancel()
        owned_pods: list[Obj] = []
        if resource == "deployments":
            for rs in self._owned("replicasets", ns, obj):
                owned_pods += self._owned("pods", ns, rs)
                self.store.delete("replicasets", ns, rs["metadata"]["name"])
        elif resource == "statefulsets":
            owned_pods = self._owned("pods", ns, obj)
        last = self.store.delete(resource, ns, name)
        for pod in owned_pods:
            self.terminate_pod(ns, pod["metadata"]["name"])
        self._sync(ns)
        return last

    def pod_names(self, ns: str, labels: dict[str, str] | None = None) -> list[str]:
        """Names of the live (not terminating) pods in `ns` matching all `labels`."""
        out = []
        for pod in self.store.list("pods", ns):
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                continue
            if labels and not all(meta.get("labels", {}).get(k) == v for k, v in labels.items()):
                continue
            out.append(meta["name"])
        return out

    def get_object(self, resource: str, ns: str | None, name: str) -> dict[str, Any] | None:
        obj = self.store.get(resource, ns, name)
        return copy.deepcopy(obj) if obj is not None else None

    async def wait_for(self, pred: Callable[[], bool], within: float = 10.0) -> bool:
        """Wait until `pred()` holds after some cluster change (tests); False on timeout."""
        return await self._wait_until(pred, within)

    async def rollout_restart(self, ns: str, name: str, resource: str = "deployments") -> None:
        """What `kubectl rollout restart` does: stamp the pod template, which starts a rollout.

        The stamp has microseconds (kubectl's has seconds), so two restarts in one second
        are two rollouts.
        """
        if resource not in ("deployments", "statefulsets"):
            raise ValueError(f"cannot restart {resource}")
        if self.store.get(resource, ns, name) is None:
            raise KeyError(f"no {resource} {ns}/{name}")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        annotations = {"kubectl.kubernetes.io/restartedAt": stamp}
        patch: Obj = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        self.apply_patch(resource, ns, name, patch, strategic=True)

    async def wait_rollout(
        self, ns: str, name: str, within: float = 60.0, resource: str = "deployments"
    ) -> bool:
        """Wait until the rollout is complete: every replica from the current template and
        Ready, no other pod left (terminating ones included). False on timeout."""
        return await self._wait_until(lambda: self._rollout_complete(resource, ns, name), within)

    def _rollout_complete(self, resource: str, ns: str, name: str) -> bool:
        obj = self.store.get(resource, ns, name)
        if obj is None or (resource, ns, name) in self._rollouts:
            return False
        want = int(obj["spec"].get("replicas", 1))
        if resource == "deployments":
            cur = self._current_rs(ns, obj)
            if cur is None:
                return False
            pods = [
                p for rs in self._owned("replicasets", ns, obj) for p in self._owned("pods", ns, rs)
            ]
            cur_uid = cur["metadata"]["uid"]
            current = [
                p
                for p in pods
                if any(r.get("uid") == cur_uid for r in p["metadata"].get("ownerReferences", []))
            ]
        else:
            pods = self._owned("pods", ns, obj)
            revision = f"{name}-{template_hash(obj['spec']['template'])}"
            current = [
                p
                for p in pods
                if p["metadata"]["labels"].get("controller-revision-hash") == revision
            ]
        return (
            len(pods) == len(current) == want
            and not any(p["metadata"].get("deletionTimestamp") for p in pods)
            and all(self._pod_ready(p) for p in pods)
        )

    # -- for the HTTP layer ---------------------------------------------------------------
    def apply_patch(
        self, resource: str, ns: str, name: str, patch: Obj, *, strategic: bool = False
    ) -> Obj:
        """Merge patch (or strategic merge: lists of named items merged by name)."""
        obj = self.store.get(resource, ns, name)
        if obj is None:
            raise KeyError(name)
        new = deep_merge(copy.deepcopy(obj), patch, strategic=strategic)
        if not isinstance(new.get("metadata"), dict):
            new["metadata"] = {}
        for key in ("name", "namespace", "uid", "creationTimestamp", "ownerReferences"):
            if key in obj["metadata"]:
                new["metadata"][key] = obj["metadata"][key]
            else:
                new["metadata"].pop(key, None)
        new["kind"], new["apiVersion"] = obj["kind"], obj["apiVersion"]
        new["status"] = obj.get("status", {})
        if new.get("spec") != obj.get("spec"):
            new["metadata"]["generation"] = obj["metadata"].get("generation", 1) + 1
        updated = self.store.update(resource, new)
        if resource in ("deployments", "statefulsets") and new.get("spec") != obj.get("spec"):
            self.workload_changed(resource, ns, name)
            updated = self.store.get(resource, ns, name) or updated
        return updated
