"""Host facts: the device, the environment and the keys a comparison must match, the download cache
and atomic writes. The bottom of the stack beside ``ptq.config``: it imports no other layer of ptq."""
