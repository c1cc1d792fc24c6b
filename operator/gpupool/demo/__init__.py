"""`gpupool demo`: the story of a shared GPU pool, live on the embedded local control plane."""
