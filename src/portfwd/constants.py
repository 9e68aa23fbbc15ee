"""Wire-level constants shared by the client side and the sandbox server.

The sandbox imports nothing else from the client side: it must stay an independent
implementation of the API server and kubelet, so our tests check one side against the other.
"""

from __future__ import annotations

# Port-forward WebSocket subprotocols (protocols.md section 2).
PORTFORWARD_V4_BINARY = "v4.channel.k8s.io"
PORTFORWARD_V4_BASE64 = "v4.base64.channel.k8s.io"
PORTFORWARD_SUBPROTOCOLS_ACCEPTED = (PORTFORWARD_V4_BINARY, PORTFORWARD_V4_BASE64, "")

# Every port-forward frame starts with one channel byte; port i uses 2*i (data), 2*i+1 (error).
DATA_CHANNEL_OFFSET = 0
ERROR_CHANNEL_OFFSET = 1
PORT_PREFIX_LEN = 2  # the first frame on each channel: the port, 2 bytes little-endian

# The label EndpointSlices carry to name their Service.
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
