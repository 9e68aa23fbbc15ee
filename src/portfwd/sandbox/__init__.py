"""A local Kubernetes API server + kubelet subset, for demos and tests.

Imports nothing from the client side except `portfwd.constants`: it is an independent
implementation the client is checked against (and kubectl / the official client check it).

Map of the package:
- `cluster.py`   SandboxCluster: lifecycle, controllers (deployment -> replicaset -> pods,
                 statefulset -> pods, endpoint slices), the fake kubelet's dial, test controls.
- `api.py`       the aiohttp app: discovery, list/get/watch, delete/patch/scale, tables,
                 the pods/portforward route (auth, 404, 400) handing over to `portforward.py`.
- `store.py`     objects, resourceVersions, bounded watch history (410 when too old).
- `auth.py`      tokens / client certificates -> users; the fixed RBAC and its 403 texts
                 (`kubeproto.py` decodes kubectl's protobuf SelfSubjectAccessReview).
- `kubeconfig.py`, `pki.py`   what a client needs to connect (CA, certs, contexts).
- `topology.py` + `demo_topology.yaml`   what the cluster holds at start-up.
- `manifests.py`, `tables.py`, `events.py`, `selectors.py`   object shapes and query parsing.
- `portforward.py`, `backends.py`   the kubelet side of port-forward and the TCP servers
                 behind pod ports.
"""
