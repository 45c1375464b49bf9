"""Train-and-merge template: fine-tune task experts, merge them, evaluate on a TaskPool."""
from dawe_merge import legacy_names

__version__ = "0.2.0"

legacy_names.install()
