"""nn.Modules: the encoder backbone, zero-shot heads, per-sample merging, hypernetworks, feature extractors."""
