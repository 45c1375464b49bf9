"""Model families: each folder adapts one modality to the core's ModelPool and TaskPool contracts."""
