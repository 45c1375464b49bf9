"""Modules around the merge: hypernetworks and their files, frozen feature extractors, zero-shot heads, the image
processor, and the check that an expert fits θ0."""
