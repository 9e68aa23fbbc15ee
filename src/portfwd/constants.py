"""Wire-level constants shared by the client side and the sandbox server.

The sandbox imports nothing else from the client side: it must stay an independent
implementation of the API server and kubelet, so our tests check one side against the other.
"""

from __future__ import annotations

# Port-forward WebSocket subprotocols (docs/protocols.md, "The legacy channel protocol").
PORTFORWARD_V4_BINARY = "v4.channel.k8s.io"
PORTFORWARD_V4_BASE64 = "v4.base64.channel.k8s.io"
PORTFORWARD_SUBPROTOCOLS_ACCEPTED = (PORTFORWARD_V4_BINARY, PORTFORWARD_V4_BASE64, "")

# Every port-forward frame starts with one channel byte; port i uses 2*i (data), 2*i+1 (error).
DATA_CHANNEL_OFFSET = 0
ERROR_CHANNEL_OFFSET = 1
PORT_PREFIX_LEN = 2  # the first frame on each channel: the port, 2 bytes little-endian

# The label EndpointSlices carry to name their Service.
LABEL_SERVICE_NAME = "kubernetes.io/service-name"

# SPDY port-forward (docs/protocols.md, section 2): plain, through `Upgrade: SPDY/3.1` on a
# POST, or tunnelled in a WebSocket whose subprotocol names it (KEP-4006).
SPDY_UPGRADE = "SPDY/3.1"
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
SPDY_TUNNEL_PROTOCOL = SPDY_UPGRADE + "+" + PORTFORWARD_PROTOCOL
HEADER_PROTOCOL_VERSION = "X-Stream-Protocol-Version"
# Per local connection the client opens two streams with these headers (kubectl's names; the
# values of STREAM_TYPE are "error" and "data").
HEADER_STREAM_TYPE = "streamType"
HEADER_PORT = "port"
HEADER_REQUEST_ID = "requestID"

# What `--protocol` takes: auto (SPDY over WebSocket, then SPDY, then v4), or one of them.
PORTFORWARD_PROTOCOL_CHOICES = ("auto", "websocket", "spdy", "v4")
