"""A local Kubernetes API server + kubelet subset, for demos and tests.

Imports nothing from the client side except `portfwd.constants`: it is an independent
implementation the client is checked against (and kubectl / the official client check it).

Map of the package:
- `cluster.py`   SandboxCluster: the server's lifecycle (work dir, PKI, TLS listener, kubeconfig,
                 stop_api/start_api on the same port). It stacks the parts below, each on the
                 one before: `state.py` (shared state, owned tasks, waits) -> `kubelet.py`
                 (dialing pod ports, backends, logs, unreachable nodes) -> `pods.py` (pod
                 lifecycle) -> `endpoints.py` (endpoint slices) -> `controllers.py`
                 (deployment -> replicaset -> pods, statefulset -> pods, the sync loop) ->
                 `seeding.py` (the topology at start-up) -> `controls.py` (what tests, the
                 demo and the HTTP layer ask: delete, patch, pod_names, wait_rollout, ...).
- `fleet.py`     SandboxFleet: several clusters (`sandbox`, `sandbox-2`, ...), one kubeconfig.
- `api.py`       the aiohttp app: discovery, list/get/watch, delete/patch/scale, tables,
                 the pods/portforward route (auth, 404, 400) handing over to `portforward.py`.
- `store.py`     objects, resourceVersions, bounded watch history (410 when too old).
- `auth.py`      tokens / client certificates -> users; the fixed RBAC and its 403 texts
                 (`kubeproto.py` decodes kubectl's protobuf SelfSubjectAccessReview).
- `kubeconfig.py`, `pki.py`   what a client needs to connect (CA, certs, contexts; merged
                 for a fleet).
- `topology.py` + `demo_topology.yaml`   what the cluster holds at start-up.
- `manifests.py`, `tables.py`, `events.py`, `selectors.py`   object shapes and query parsing.
- `portforward.py`, `backends.py`   the kubelet side of port-forward and the TCP servers
                 behind pod ports.
"""
