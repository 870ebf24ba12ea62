"""``python -m ptq.duet``: a duet worker (:mod:`ptq.run.duet`).

This path is the protocol's entry point across code versions: ``ptq ab`` starts each side's worker
with that side's code first on the path, and revisions before the gate moved into ``ptq.gate``
have their worker here too. Keep it where it is.
"""

from ptq.run.duet import serve

if __name__ == "__main__":
    serve()
