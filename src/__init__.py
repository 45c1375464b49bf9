"""Train-and-merge template: fine-tune task experts, merge them, evaluate on a TaskPool."""
