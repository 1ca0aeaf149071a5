"""schemathesis hooks for latch (run.sh loads this module).

The user import's body is `application/x-ndjson`, a media type schemathesis
has no serializer for: its generated bodies (strings and bytes, the schema
being a binary string) are sent as they are, as for octet-stream.
"""

import schemathesis
from schemathesis.transport.serialization import serialize_binary


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    return {"data": serialize_binary(value)}
