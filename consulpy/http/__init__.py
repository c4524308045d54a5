"""The HTTP API frontend (:8500): Consul's URLs, parameters, headers, JSON shapes and plain-text errors.

Parses requests, calls endpoints or the agent, renders. Never writes to the state store.
Imports: aiohttp, orjson, consulpy.endpoints, consulpy.agent (types), consulpy.state (records), stdlib.
"""
