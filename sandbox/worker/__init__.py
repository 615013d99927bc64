"""The code that runs inside a sandbox, shipped as a unit (bwrap binds this
folder read-only, unshare/none copy it, docker streams it into the container).

Standard library only, relative imports only: the package may be loaded as
``tinyact.sandbox.worker`` or, inside a sandbox, as ``worker``. Modules, bottom up:

- ``protocol``: frames, their bounds, the one ``Channel`` of every side and backend;
- ``capture``: stdout/stderr of the code into memfds;
- ``execute``: running one code action, ``final_answer``, tools, error reports;
- ``procs``: prctl, forks, reaping and killing strays, the worker's log;
- ``reset``: putting a reusable sandbox back as it started, between two runs;
- ``worker``: the holder and its standby (state kept across executes, forks);
- ``boot``: rlimits, privilege drop, seccomp, init, the first holder;
- ``mux``: docker's one stream for every session of a container.
"""

MODULES = ("protocol", "capture", "execute", "procs", "reset", "worker", "boot", "mux")
"""Import order (each imports only those before it)."""
