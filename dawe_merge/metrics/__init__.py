"""Per-task test metrics (accuracy, answers in the model's own words, Spearman) and bf16 close-call counts."""
