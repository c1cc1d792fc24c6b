"""The operator: kopf handlers, indexes -> snapshot, the scheduling loop and its executor.

`kopf run -m gpupool.controller` (or `gpupool operator`) runs it: importing the package
registers the handlers with kopf.
"""

from gpupool.controller import handlers as handlers
