"""The workload controllers: deployment -> replicasets -> pods (rolling updates one pod at a
time), statefulset -> ordinal pods, their status, and the sync loop that runs them all.
"""

from __future__ import annotations

import asyncio
import copy

from portfwd.sandbox.endpoints import EndpointSlices
from portfwd.sandbox.manifests import (
    owner_ref,
    random_suffix,
    template_hash,
)
from portfwd.sandbox.store import Obj, now_rfc3339


class Controllers(EndpointSlices):
    """Workload controllers and the sync loop."""

    def resync(self, ns: str) -> None:
        """Re-run the controllers for `ns` (after an API write, e.g. a label change)."""
        self._sync(ns)

    # -- replica sets / deployments -------------------------------------------------------
    def _ensure_replicaset(self, ns: str, dep: Obj, replicas: int, revision: int) -> Obj:
        template = copy.deepcopy(dep["spec"]["template"])
        h = template_hash(template)
        name = f"{dep['metadata']['name']}-{h}"
        existing = self.store.get("replicasets", ns, name)
        if existing is not None:
            return existing
        labels = {**dep["spec"]["selector"]["matchLabels"], "pod-template-hash": h}
        template.setdefault("metadata", {})["labels"] = {
            **template["metadata"].get("labels", {}),
            "pod-template-hash": h,
        }
        return self.store.create(
            "replicasets",
            {
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": labels,
                    "annotations": {
                        "deployment.kubernetes.io/desired-replicas": str(
                            dep["spec"].get("replicas", 1)
                        ),
                        "deployment.kubernetes.io/max-replicas": str(
                            dep["spec"].get("replicas", 1) + 1
                        ),
                        "deployment.kubernetes.io/revision": str(revision),
                    },
                    "ownerReferences": [owner_ref(dep)],
                    "generation": 1,
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": labels},
                    "template": template,
                },
                "status": {"replicas": 0, "observedGeneration": 1},
            },
        )

    def _create_rs_pod(self, ns: str, rs: Obj, state: str = "ContainerCreating") -> Obj:
        base = rs["metadata"]["name"]
        while True:
            name = f"{base}-{random_suffix()}"
            if self.store.get("pods", ns, name) is None:
                break
        tmpl = rs["spec"]["template"]
        pod = self._create_pod(
            ns,
            name,
            tmpl["metadata"].get("labels", {}),
            tmpl["spec"]["containers"],
            rs,
            state,
            {},
        )
        if state == "ContainerCreating":
            self._start_pod_later(ns, name, pod["metadata"]["uid"])
        return pod

    def _reconcile_rs(self, ns: str, rs: Obj) -> list[str]:
        """Create or delete pods so the ReplicaSet has spec.replicas live ones."""
        live = [
            p for p in self._owned("pods", ns, rs) if not p["metadata"].get("deletionTimestamp")
        ]
        want = int(rs["spec"].get("replicas", 0))
        created = []
        for _ in range(want - len(live)):
            created.append(self._create_rs_pod(ns, rs)["metadata"]["name"])
        if len(live) > want:
            # Like the ReplicaSet controller: unscheduled, then not ready, then newest first.
            def rank(p: Obj) -> tuple[int, int]:
                return (
                    0 if not p["spec"].get("nodeName") else 1,
                    0 if not self._pod_ready(p) else 1,
                )

            newest_first = sorted(
                live, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True
            )
            for p in sorted(newest_first, key=rank)[: len(live) - want]:
                self.terminate_pod(ns, p["metadata"]["name"])
        return created

    def _set_rs_replicas(self, ns: str, rs_name: str, replicas: int) -> list[str]:
        rs = self.store.get("replicasets", ns, rs_name)
        if rs is None:
            return []
        new = copy.deepcopy(rs)
        old_count = int(new["spec"]["replicas"])
        if old_count != replicas:
            refs = rs["metadata"].get("ownerReferences", [])
            dep = self.store.get("deployments", ns, refs[0]["name"]) if refs else None
            if dep is not None:
                self.events.record(
                    dep,
                    "ScalingReplicaSet",
                    f"Scaled {'up' if replicas > old_count else 'down'} replica set {rs_name} "
                    f"from {old_count} to {replicas}",
                    component="deployment-controller",
                )
            new["spec"]["replicas"] = replicas
            new["metadata"]["generation"] = new["metadata"].get("generation", 1) + 1
            new["status"]["observedGeneration"] = new["metadata"]["generation"]
            rs = self.store.update("replicasets", new)
        created = self._reconcile_rs(ns, rs)
        self._sync(ns)
        return created

    def workload_changed(self, resource: str, ns: str, name: str) -> None:
        """After a PATCH/PUT of a deployment or statefulset (or its scale)."""
        obj = self.store.get(resource, ns, name)
        if obj is None:
            return
        key = (resource, ns, name)
        running = self._rollouts.get(key)
        if resource == "deployments":
            rs = self._current_rs(ns, obj)
            if rs is None or running is not None or self._old_rs_with_pods(ns, obj, rs):
                if running is not None:
                    running.cancel()
                self._rollouts[key] = self._spawn(self._deployment_rollout(ns, name))
            else:
                self._set_rs_replicas(ns, rs["metadata"]["name"], int(obj["spec"]["replicas"]))
        else:
            if running is not None:
                running.cancel()
            self._rollouts[key] = self._spawn(self._statefulset_rollout(ns, name))
        self._sync(ns)

    def _current_rs(self, ns: str, dep: Obj) -> Obj | None:
        h = template_hash(dep["spec"]["template"])
        return self.store.get("replicasets", ns, f"{dep['metadata']['name']}-{h}")

    def _old_rs_with_pods(self, ns: str, dep: Obj, cur: Obj) -> list[Obj]:
        return [
            rs
            for rs in self._owned("replicasets", ns, dep)
            if rs["metadata"]["name"] != cur["metadata"]["name"] and rs["spec"]["replicas"] > 0
        ]

    async def _wait_ready_or_gone(self, ns: str, names: list[str]) -> None:
        def done() -> bool:
            for n in names:
                p = self.store.get("pods", ns, n)
                if p is not None and not self._pod_ready(p):
                    return False
            return True

        await self._wait_until(done, max(10.0, 20 * self.replacement_ready_delay))

    async def _deployment_rollout(self, ns: str, name: str) -> None:
        """Rolling update, one pod at a time: a new pod Ready before an old one goes."""
        key = ("deployments", ns, name)
        try:
            while True:
                dep = self.store.get("deployments", ns, name)
                if dep is None:
                    return
                cur = self._current_rs(ns, dep)
                if cur is None:
                    revisions = [
                        int(
                            rs["metadata"]["annotations"].get(
                                "deployment.kubernetes.io/revision", 0
                            )
                        )
                        for rs in self._owned("replicasets", ns, dep)
                    ]
                    revision = max(revisions, default=0) + 1
                    cur = self._ensure_replicaset(ns, dep, 0, revision)
                    new_dep = copy.deepcopy(dep)
                    new_dep["metadata"].setdefault("annotations", {})[
                        "deployment.kubernetes.io/revision"
                    ] = str(revision)
                    self.store.update("deployments", new_dep)
                want = int(dep["spec"].get("replicas", 1))
                have = int(cur["spec"]["replicas"])
                olds = self._old_rs_with_pods(ns, dep, cur)
                cur_name = cur["metadata"]["name"]
                if have < want:
                    created = self._set_rs_replicas(ns, cur_name, have + 1)
                    await self._wait_ready_or_gone(ns, created)
                    if olds:
                        old = olds[0]
                        self._set_rs_replicas(
                            ns, old["metadata"]["name"], int(old["spec"]["replicas"]) - 1
                        )
                elif have > want:
                    self._set_rs_replicas(ns, cur_name, want)
                elif olds:
                    old = olds[0]
                    self._set_rs_replicas(
                        ns, old["metadata"]["name"], int(old["spec"]["replicas"]) - 1
                    )
                else:
                    self._sync(ns)
                    return
        finally:
            if self._rollouts.get(key) is asyncio.current_task():
                del self._rollouts[key]
                self._sync(ns)

    # -- statefulsets ---------------------------------------------------------------------
    def _create_sts_pod(self, ns: str, sts: Obj, ordinal: int, state: str) -> Obj:
        name = f"{sts['metadata']['name']}-{ordinal}"
        tmpl = sts["spec"]["template"]
        revision = f"{sts['metadata']['name']}-{template_hash(tmpl)}"
        labels = {
            **tmpl["metadata"].get("labels", {}),
            "controller-revision-hash": revision,
            "statefulset.kubernetes.io/pod-name": name,
            "apps.kubernetes.io/pod-index": str(ordinal),
        }
        pod = self._create_pod(
            ns,
            name,
            labels,
            tmpl["spec"]["containers"],
            sts,
            state,
            {"hostname": name, "subdomain": sts["spec"].get("serviceName", "")},
        )
        if state == "ContainerCreating":
            self._start_pod_later(ns, name, pod["metadata"]["uid"])
        return pod

    def _reconcile_sts(self, ns: str, sts: Obj) -> None:
        want = int(sts["spec"].get("replicas", 1))
        base = sts["metadata"]["name"]
        for i in range(want):
            if self.store.get("pods", ns, f"{base}-{i}") is None:
                self._create_sts_pod(ns, sts, i, "ContainerCreating")
        for p in self._owned("pods", ns, sts):
            ordinal = p["metadata"]["name"].rsplit("-", 1)[-1]
            if ordinal.isdigit() and int(ordinal) >= want:
                self.terminate_pod(ns, p["metadata"]["name"])

    async def _statefulset_rollout(self, ns: str, name: str) -> None:
        """Scale, then replace out-of-date pods from the highest ordinal down."""
        key = ("statefulsets", ns, name)
        try:
            sts = self.store.get("statefulsets", ns, name)
            if sts is None:
                return
            self._reconcile_sts(ns, sts)
            self._sync(ns)
            while True:
                sts = self.store.get("statefulsets", ns, name)
                if sts is None:
                    return
                revision = f"{name}-{template_hash(sts['spec']['template'])}"
                stale = sorted(
                    (
                        p
                        for p in self._owned("pods", ns, sts)
                        if p["metadata"]["labels"].get("controller-revision-hash") != revision
                        and not p["metadata"].get("deletionTimestamp")
                    ),
                    key=lambda p: -int(p["metadata"]["name"].rsplit("-", 1)[-1]),
                )
                if not stale:
                    return
                victim = stale[0]["metadata"]["name"]
                old_uid = stale[0]["metadata"]["uid"]
                self.terminate_pod(ns, victim)

                def replaced(victim: str = victim, old_uid: str = old_uid) -> bool:
                    p = self.store.get("pods", ns, victim)
                    return p is not None and p["metadata"]["uid"] != old_uid and self._pod_ready(p)

                await self._wait_until(replaced, max(10.0, 20 * self.replacement_ready_delay))
        finally:
            if self._rollouts.get(key) is asyncio.current_task():
                del self._rollouts[key]
                self._sync(ns)

    # -- the sync loop and workload status ------------------------------------------------
    def _sync(self, ns: str) -> None:
        """Bring every derived object of `ns` up to date (idempotent, cheap).

        Reconciling can terminate or create pods, which asks for another sync: instead of
        recursing, that request is noted and the outer call loops until nothing changes.
        """
        self._dirty.add(ns)
        if self._syncing:
            return
        self._syncing = True
        try:
            while self._dirty:
                self._sync_once(self._dirty.pop())
        finally:
            self._syncing = False
        self._notify()

    def _sync_once(self, ns: str) -> None:
        for sts in self.store.list("statefulsets", ns):
            self._reconcile_sts(ns, sts)
        for rs in self.store.list("replicasets", ns):
            self._reconcile_rs(ns, rs)
        for rs in self.store.list("replicasets", ns):
            self._update_rs_status(ns, rs)
        for dep in self.store.list("deployments", ns):
            self._update_deployment_status(ns, dep)
        for sts in self.store.list("statefulsets", ns):
            self._update_sts_status(ns, sts)
        self._sync_slices(ns)

    def _counts(self, pods: list[Obj]) -> tuple[int, int]:
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return len(live), sum(1 for p in live if self._pod_ready(p))

    def _update_rs_status(self, ns: str, rs: Obj) -> None:
        rs = self.store.get("replicasets", ns, rs["metadata"]["name"]) or rs
        total, ready = self._counts(self._owned("pods", ns, rs))
        new = copy.deepcopy(rs)
        new["status"] = {
            "replicas": total,
            "fullyLabeledReplicas": total,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if not ready:
            del new["status"]["readyReplicas"]
            del new["status"]["availableReplicas"]
        self.store.update("replicasets", new)

    def _update_deployment_status(self, ns: str, dep: Obj) -> None:
        dep = self.store.get("deployments", ns, dep["metadata"]["name"]) or dep
        pods: list[Obj] = []
        for rs in self._owned("replicasets", ns, dep):
            pods += self._owned("pods", ns, rs)
        total, ready = self._counts(pods)
        cur = self._current_rs(ns, dep)
        updated = self._counts(self._owned("pods", ns, cur))[0] if cur is not None else 0
        want = int(dep["spec"].get("replicas", 1))
        key = ("deployments", ns, dep["metadata"]["name"])
        rolling = key in self._rollouts
        status: Obj = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if total - ready > 0:
            status["unavailableReplicas"] = total - ready
        for k in ("readyReplicas", "availableReplicas", "updatedReplicas"):
            if not status[k]:
                del status[k]
        old_conds = {c["type"]: c for c in dep.get("status", {}).get("conditions", [])}

        def cond(kind: str, ok: bool, reason: str, message: str) -> Obj:
            prev = old_conds.get(kind)
            same = prev is not None and prev["status"] == ("True" if ok else "False")
            since = prev["lastTransitionTime"] if same and prev else now_rfc3339()
            return {
                "type": kind,
                "status": "True" if ok else "False",
                "lastUpdateTime": prev["lastUpdateTime"] if same and prev else since,
                "lastTransitionTime": since,
                "reason": reason,
                "message": message,
            }

        available = want == 0 or ready >= max(1, want - want // 4)
        name = dep["metadata"]["name"]
        cur_name = cur["metadata"]["name"] if cur is not None else name
        status["conditions"] = [
            cond(
                "Available",
                available,
                "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available
                else "Deployment does not have minimum availability.",
            ),
            cond(
                "Progressing",
                True,
                "ReplicaSetUpdated" if rolling else "NewReplicaSetAvailable",
                f'ReplicaSet "{cur_name}" is progressing.'
                if rolling
                else f'ReplicaSet "{cur_name}" has successfully progressed.',
            ),
        ]
        new = copy.deepcopy(dep)
        new["status"] = status
        self.store.update("deployments", new)

    def _update_sts_status(self, ns: str, sts: Obj) -> None:
        sts = self.store.get("statefulsets", ns, sts["metadata"]["name"]) or sts
        pods = self._owned("pods", ns, sts)
        total, ready = self._counts(pods)
        revision = f"{sts['metadata']['name']}-{template_hash(sts['spec']['template'])}"
        updated = sum(
            1 for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == revision
        )
        new = copy.deepcopy(sts)
        new["status"] = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": total,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": updated,
            "updatedReplicas": updated,
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        self.store.update("statefulsets", new)
