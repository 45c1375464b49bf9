"""Tensor kernels of merging: θ0 + Σ_t c_t τ_t per batch or exactly per sample (merged_forward.py), the per-sample
layers (layers.py, linear.py: the cost rule between build-then-bmm and stacked-input products) and CUDA graphs."""
