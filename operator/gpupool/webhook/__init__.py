"""The validating admission webhook: rules that need more than one object to check."""
