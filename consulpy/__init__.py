"""consulpy: a Consul-compatible agent daemon.

The package root only names the version; every subsystem lives in its own subpackage.
"""

__version__ = "0.1.0"
# The Consul release whose interface consulpy follows; clients that gate on the version read this.
CONSUL_VERSION = "1.20.1"
