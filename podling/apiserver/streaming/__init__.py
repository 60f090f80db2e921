"""Streaming subresources of the API server: exec, attach and port-forward (docs/streaming.md).

:mod:`.spdy` is podling's own SPDY/3.1 framing and multiplexing (what kubectl's SPDY
executor and port-forwarder speak); :mod:`.upgrade` carries a SPDY byte stream over a raw
HTTP/1.1 upgrade or inside WebSocket binary messages.
"""
