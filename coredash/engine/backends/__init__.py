"""Executor backends, one module each, behind the contract in ``base``.

The registry (``coredash.engine.modes``) names each backend's class by import
path and loads it on first use; nothing else imports a backend module by name.
"""

# Job threads in coredash's own process are named "<prefix>_<n>", so samplers and
# views can tell them from the dashboard's threads.
THREAD_NAME_PREFIX = "coredash-worker"
