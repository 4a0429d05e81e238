"""coredash's built-in job catalogue: plain top-level functions, one module per family.

Each function carries ``@task`` metadata (description, size knob, whether it
releases the GIL). ``coredash tasks`` lists them; ``coredash.engine.catalog``
loads them by module name, so worker processes import them by reference.
"""

MODULES = ("tasks.cpu", "tasks.native", "tasks.misc", "tasks.faults")
