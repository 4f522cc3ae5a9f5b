"""The streaming core: turn growing files into numbered lines and share them.

Lines (bytes → text), the follower (one file, its history and live lines),
the watcher (one thread and one inotify instance for every follower),
fingerprints (is it still the same file?), portable file calls, the hub (one
source per deployment, many subscribers), deployments (ids and safe paths),
sources (which files an id may name: a data dir, or the paths given on the
command line), the stdin spool, whole-file search and the simulator
(applications that write realistic logs). It knows files and threads, not
HTTP: it imports only the standard library, ``logstream.support``, ``regex``
and, on Linux, inotify_simple — never Flask or Socket.IO.
"""
