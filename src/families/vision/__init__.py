"""The vision family (CLIP image classification); for now its corruptions for the out-of-distribution experiment."""
