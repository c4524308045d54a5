"""consulpy: a Consul-compatible agent daemon.

The package root only names the version; every subsystem lives in its own subpackage.
"""

__version__ = "0.1.0"
# The Consul release whose interface consulpy follows; clients that gate on the version read this.
CONSUL_VERSION = "1.20.1"
# The date this consulpy version was cut; reported as Consul reports its build date.
BUILD_DATE = "2026-11-21T00:00:00Z"
