"""The operator: kopf handlers, indexes -> snapshot, the scheduling loop and its executor."""
